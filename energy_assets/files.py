"""Files the platform writes and reads: atomic writes, secret-file permissions, locks.

`atomic_file` is the one place that knows temp file + fsync + rename: readers see the old content
or the new, never half of it. The temporary file lives in the target's folder (so the rename is
atomic on one filesystem) and is created with its final mode, so a private key is never readable by
others, not even for a moment. Secret files (keys, passwords, passfiles) are refused when the group
or others can read them (`check_private_file`, `read_private_file`); `exclusive_lock`
serialises processes that change the same folder (the managed cluster's start, the CA).

Data files a user names or drops (NEM12 files, zips, the BDG2 archive) are opened with `open_regular_file`:
a symbolic link, folder, fifo, socket or device is refused from its `lstat`, before anything opens it, so
a link to `/etc/passwd` is never read and a fifo never blocks the reader.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import secrets
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from energy_assets.errors import DataValidationError, InsecureFileError


def fsync_directory(directory: str | Path) -> None:
    """Make a rename in `directory` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_filesystem(path: str | Path) -> None:
    """Flush every pending write of the filesystem holding `path` to disk, in one call.

    Writers of many small files (a year of daily partitions) skip their per-file fsync and call this once
    before the step that depends on durability (a commit): Linux `syncfs`, else `os.sync`.
    """
    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(
    path: str | Path, mode: int = 0o644, *, owner: tuple[int, int] | None = None, durable: bool = True
) -> Iterator[BinaryIO]:
    """Write `path` through a temporary file in its folder: on a clean exit the file replaces `path`
    (readers see the old content or the new, never half), on an error it is removed.

    The temporary file is created with its final `mode` (and `owner`), so a secret is never readable by
    others, not even for a moment. `durable`: fsync the file and the folder; without it, the caller makes a
    batch of such writes durable with one `sync_filesystem`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)  # the umask may have removed bits we asked for
            if owner is not None:
                os.fchown(file.fileno(), *owner)
            yield file
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    if durable:
        fsync_directory(path.parent)


def promote_file(temporary: str | Path, final: str | Path, *, durable: bool = True) -> None:
    """Move a finished temporary file (a verified download, a staged partition) over `final` in one
    rename; `durable`: its bytes are fsynced first and the rename after."""
    if durable:
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
    os.replace(temporary, final)
    if durable:
        fsync_directory(Path(final).parent)


def write_atomic(
    path: str | Path, data: bytes, mode: int = 0o644, *, owner: tuple[int, int] | None = None
) -> None:
    """Write `data` to `path` atomically and durably with `mode`, optionally owned by `owner` (uid, gid)."""
    with atomic_file(path, mode, owner=owner) as file:
        file.write(data)


def write_replace(path: Path, data: bytes) -> None:
    """Write `data` atomically without an fsync: the caller syncs a batch of writes with `sync_filesystem`."""
    with atomic_file(path, durable=False) as file:
        file.write(data)


def read_private_file(
    path: str | Path, *, what: str, error: type[InsecureFileError] = InsecureFileError
) -> bytes:
    """The bytes of a secret file (key, password), refused when the group or others can read it.

    The mode is read from the opened file, so the file checked is the file read. Raises `error` (an
    `InsecureFileError`) naming the file and the `chmod` that fixes it.
    """
    path = Path(path)
    with open(path, "rb") as file:
        mode = stat.S_IMODE(os.fstat(file.fileno()).st_mode)
        if mode & 0o077:
            raise error(_insecure_message(what, path, mode))
        return file.read()


def _insecure_message(what: str, path: Path, mode: int) -> str:
    return (
        f"{what} {path} has mode {mode:04o}, readable by group or others; run `chmod 600 {path}` "
        "(and check who could have copied it)."
    )


class NotARegularFileError(DataValidationError):
    """A path given as a data file is a symbolic link, folder, fifo, socket or device; it was not read."""


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (fifo)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _not_regular(path: str | os.PathLike[str], kind: str) -> NotARegularFileError:
    return NotARegularFileError(
        f"{path} is {kind}, not a regular file, and was not read; give the data file itself"
        " (links are not followed)."
    )


def check_regular_file(path: str | os.PathLike[str]) -> os.stat_result:
    """The `lstat` of `path` if it is a regular file; else `NotARegularFileError`, without opening it.

    A symbolic link is judged as the link, never its target. A missing file raises `FileNotFoundError`.
    """
    status = os.lstat(path)
    if not stat.S_ISREG(status.st_mode):
        raise _not_regular(path, _kind(status.st_mode))
    return status


def open_regular_file(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a data file for binary reading; a link or non-regular file raises `NotARegularFileError` unread.

    `lstat` first, so a fifo or device is never opened; then `O_NOFOLLOW | O_NONBLOCK` and an `fstat` of what
    was opened, so a file swapped for a link or a fifo between the two is refused as well.
    """
    check_regular_file(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _not_regular(path, "a symbolic link") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, _kind(mode))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_private_file(path: str | Path, *, what: str) -> None:
    """Refuse a secret file (key, password, passfile) that the group or others can read.

    Raises `InsecureFileError` naming the file and the `chmod` that fixes it.
    """
    path = Path(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise InsecureFileError(_insecure_message(what, path, mode))


@contextlib.contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (created 0600) for the `with` block.

    The kernel drops the lock when the process dies, so a crashed holder never blocks the next one.
    Re-entrant within a process: a nested `with` on the same path does not deadlock (flock locks
    belong to the open file, so a second open in the same process would wait for itself).
    """
    key = str(Path(path).resolve())
    with _LOCKS_GUARD:
        local = _LOCAL_LOCKS.setdefault(key, threading.RLock())
    with local:
        depth = _LOCK_DEPTH.get(key, 0)
        if depth:
            _LOCK_DEPTH[key] = depth + 1
            try:
                yield
            finally:
                _LOCK_DEPTH[key] -= 1
            return
        fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _LOCK_DEPTH[key] = 1
            try:
                yield
            finally:
                _LOCK_DEPTH[key] = 0
        finally:
            os.close(fd)


_LOCKS_GUARD = threading.Lock()
_LOCAL_LOCKS: dict[str, threading.RLock] = {}
_LOCK_DEPTH: dict[str, int] = {}
