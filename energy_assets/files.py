"""Atomic file writes: the one place that knows temp file + fsync + rename.

Readers of a file written here see the old content or the new, never half of it. The temporary
file lives in the target's folder (so the rename is atomic on one filesystem) and is created with
its final mode, so a private key is never readable by others, not even for a moment.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


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


def write_atomic(
    path: str | Path, data: bytes, mode: int = 0o644, *, owner: tuple[int, int] | None = None
) -> None:
    """Write `data` to `path` atomically with `mode`, optionally owned by `owner` (uid, gid)."""
    path = Path(path)
    temp_path = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)  # the umask may have removed bits we asked for
            if owner is not None:
                os.fchown(file.fileno(), *owner)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp_path.unlink()
        raise
    fsync_directory(path.parent)
