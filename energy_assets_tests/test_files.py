"""The atomic writer every file goes through: temporary file, fsync, rename; nothing left after a failure."""

from __future__ import annotations

import os
import pwd
import re
import stat
from pathlib import Path

import pytest

from energy_assets import files
from energy_assets.files import fsync_directory, write_atomic


def temporaries(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def test_new_file_gets_its_content_and_mode_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "server.key"
    old_umask = os.umask(0o077)
    try:
        write_atomic(target, b"secret", 0o640)
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"secret"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["server.key"]


def test_the_target_is_replaced_by_a_rename_not_rewritten_in_place(tmp_path: Path) -> None:
    target = tmp_path / "index.json"
    target.write_bytes(b"old content")
    # A reader that opened the old file (and a hard link to it) keep the old content in full.
    old_link = tmp_path / "old-link"
    os.link(target, old_link)
    inode_before = target.stat().st_ino
    with open(target, "rb") as reader:
        write_atomic(target, b"new", 0o600)
        assert reader.read() == b"old content"
    assert target.read_bytes() == b"new"
    assert target.stat().st_ino != inode_before
    assert old_link.read_bytes() == b"old content"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert temporaries(tmp_path) == []


def test_the_data_is_written_and_synced_in_a_private_temporary_file_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At fsync time the target still holds the old bytes and the new ones sit in `.<name>.<hex>.tmp`."""
    target = tmp_path / "ca.key"
    target.write_bytes(b"old")
    seen: list[tuple[bytes, bool, int, bytes]] = []
    real_fsync = os.fsync

    def observing_fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            [name] = temporaries(tmp_path)
            temporary = tmp_path / name
            seen.append(
                (
                    target.read_bytes(),
                    re.fullmatch(r"\.ca\.key\.[0-9a-f]{16}\.tmp", name) is not None,
                    stat.S_IMODE(temporary.stat().st_mode),
                    temporary.read_bytes(),
                )
            )
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", observing_fsync)
    write_atomic(target, b"new key", 0o600)
    assert seen == [(b"old", True, 0o600, b"new key")]
    assert target.read_bytes() == b"new key"
    assert temporaries(tmp_path) == []


def test_the_folder_is_synced_after_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "crl.pem"
    synced: list[tuple[Path, bytes]] = []
    monkeypatch.setattr(
        files, "fsync_directory", lambda directory: synced.append((Path(directory), target.read_bytes()))
    )
    write_atomic(target, b"crl")
    assert synced == [(tmp_path, b"crl")]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "cluster.json"
    target.write_bytes(b'{"port": 5432}')

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, b'{"port": 6543}')
    assert target.read_bytes() == b'{"port": 5432}'
    assert os.listdir(tmp_path) == ["cluster.json"]


def test_a_failed_rename_leaves_no_temporary(tmp_path: Path) -> None:
    # The target is a non-empty folder: the rename fails after the temporary file was written.
    target = tmp_path / "occupied"
    target.mkdir()
    (target / "inside").write_bytes(b"x")
    with pytest.raises(OSError):
        write_atomic(target, b"data")
    assert sorted(os.listdir(tmp_path)) == ["occupied"]
    assert (target / "inside").read_bytes() == b"x"


def test_owner_is_applied_before_the_file_appears(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give a file away")
    nobody = pwd.getpwnam("nobody")
    target = tmp_path / "server.key"
    write_atomic(target, b"key", 0o600, owner=(nobody.pw_uid, nobody.pw_gid))
    info = target.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (nobody.pw_uid, nobody.pw_gid, 0o600)


def test_fsync_directory_ignores_folders_that_cannot_be_opened(tmp_path: Path) -> None:
    fsync_directory(tmp_path)  # a real folder: opened, synced, closed
    fsync_directory(tmp_path / "missing")  # no error: some platforms cannot open folders at all
    assert os.listdir(tmp_path) == []


def test_a_private_file_is_never_readable_by_others_not_even_before_its_chmod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Created with its final mode: the fchmod only restores bits a umask removed, it never takes any away."""
    modes_at_creation: list[int] = []
    real_fchmod = os.fchmod

    def observing_fchmod(fd: int, mode: int) -> None:
        modes_at_creation.append(stat.S_IMODE(os.fstat(fd).st_mode))
        real_fchmod(fd, mode)

    monkeypatch.setattr(files.os, "fchmod", observing_fchmod)
    old_umask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "superuser.password", b"pw", 0o600)
        write_atomic(tmp_path / "cluster.json", b"{}")
    finally:
        os.umask(old_umask)
    assert modes_at_creation == [0o600, 0o644]
    assert stat.S_IMODE((tmp_path / "cluster.json").stat().st_mode) == 0o644


# ------------------------------------------------------------------------------------ data files
SECRET = b"root:x:0:0:Secret Marker:/root:/bin/bash\n"


def test_a_regular_file_opens_for_reading(tmp_path: Path) -> None:
    path = tmp_path / "meter.csv"
    path.write_bytes(b"100,NEM12\n")
    with files.open_regular_file(path) as handle:
        assert handle.read() == b"100,NEM12\n"
    assert files.check_regular_file(path).st_size == 10


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda path, target: os.symlink(target, path), "a symbolic link"),
        (lambda path, target: os.mkfifo(path), "a named pipe (fifo)"),
        (lambda path, target: os.mkdir(path), "a folder"),
    ],
)
def test_links_fifos_and_folders_are_refused_unread(tmp_path: Path, make, kind: str) -> None:
    target = tmp_path / "passwd"
    target.write_bytes(SECRET)
    path = tmp_path / "x.csv"
    make(path, target)
    for call in (files.check_regular_file, files.open_regular_file):
        with pytest.raises(files.NotARegularFileError) as raised:
            call(path)
        assert str(raised.value) == (
            f"{path} is {kind}, not a regular file, and was not read; give the data file itself"
            " (links are not followed)."
        )


def test_a_link_or_fifo_swapped_in_after_the_lstat_is_refused_by_the_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "passwd"
    target.write_bytes(SECRET)
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    # As if each had been a regular file when `lstat` looked: O_NOFOLLOW and the fstat catch the swap, and
    # O_NONBLOCK keeps the fifo (no writer) from blocking the open.
    monkeypatch.setattr(files, "check_regular_file", lambda path: os.lstat(target))
    with pytest.raises(files.NotARegularFileError, match="link.csv is a symbolic link"):
        files.open_regular_file(link)
    with pytest.raises(files.NotARegularFileError, match="fifo.csv is a named pipe"):
        files.open_regular_file(fifo)
