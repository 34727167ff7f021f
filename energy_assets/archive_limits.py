"""Limits on what a zip archive or a text data file may hold, and the settings that change them.

Both file sources use them: NEM12 files and zips from the meter inbox, and the BDG2 archive. A zip bomb (a
small archive that inflates to gigabytes), an endless line or a directory of millions of entries is refused
fast and in bounded memory, with an error naming the archive, the member, the limit and its setting:

- `ENERGY_ASSETS_MAX_ZIP_MEMBERS` (default 10,000): entries in one zip's directory, read from its end record
  before `ZipFile` builds an object per entry;
- `ENERGY_ASSETS_MAX_UNCOMPRESSED_BYTES` (default 4 GiB): one zip member, as declared in the zip directory and
  as counted while it is read; or one plain file, from its `stat` and counted too;
- `ENERGY_ASSETS_MAX_COMPRESSION_RATIO` (default 200): uncompressed / compressed size of a member of 1 MiB or
  more (a smaller member cannot be a bomb, and tiny files compress oddly);
- `ENERGY_ASSETS_MAX_LINE_BYTES` (default 1 MiB): one line of a CSV or NEM12 text, its line end not counted.

The defaults leave room over the real data: the largest BDG2 member (`electricity.csv`, 1,579 columns) is
about 1 GB uncompressed with lines of tens of kilobytes; NEM12 files are kilobytes to tens of megabytes with
lines of at most a few kilobytes (a 5-minute 300 record has 295 fields). Text of numbers deflates to a few
times smaller; deflate reaches about 1,000:1 on a bomb's repeated bytes.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, BinaryIO

from energy_assets.errors import ConfigurationError, DataValidationError

ENV_MAX_ZIP_MEMBERS = "ENERGY_ASSETS_MAX_ZIP_MEMBERS"
ENV_MAX_UNCOMPRESSED_BYTES = "ENERGY_ASSETS_MAX_UNCOMPRESSED_BYTES"
ENV_MAX_COMPRESSION_RATIO = "ENERGY_ASSETS_MAX_COMPRESSION_RATIO"
ENV_MAX_LINE_BYTES = "ENERGY_ASSETS_MAX_LINE_BYTES"

DEFAULT_MAX_ZIP_MEMBERS = 10_000
DEFAULT_MAX_UNCOMPRESSED_BYTES = 4 << 30
DEFAULT_MAX_COMPRESSION_RATIO = 200.0
DEFAULT_MAX_LINE_BYTES = 1 << 20
RATIO_CHECKED_FROM_BYTES = 1 << 20

_END_RECORD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_END_RECORD = b"PK\x06\x06"
_END_RECORD_BYTES = 22
_MAX_COMMENT_BYTES = 0xFFFF


class FileLimitError(DataValidationError):
    """A file or zip member goes over one of the limits; it was refused before (or while) being read.

    `file` is the file or archive, `member` the zip member (None for a plain file), `line` the 1-based line
    (for the line length), `setting` the environment variable that raises the limit.
    """

    def __init__(
        self,
        file: str,
        detail: str,
        *,
        setting: str,
        limit: float,
        member: str | None = None,
        line: int | None = None,
    ) -> None:
        self.file = file
        self.member = member
        self.line = line
        self.setting = setting
        self.limit = limit
        self.detail = detail
        where = f"{file}:{member}" if member else file
        if line is not None:
            where += f", line {line}"
        super().__init__(f"{where}: {detail}")


@dataclass(frozen=True)
class FileLimits:
    """The four limits (see the module docstring); `from_env` reads and checks the settings."""

    max_zip_members: int = DEFAULT_MAX_ZIP_MEMBERS
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES
    max_compression_ratio: float = DEFAULT_MAX_COMPRESSION_RATIO
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FileLimits:
        """The limits from the environment; a bad value raises `ConfigurationError` naming the variable."""
        env = os.environ if environ is None else environ
        return cls(
            max_zip_members=int(_number(env, ENV_MAX_ZIP_MEMBERS, DEFAULT_MAX_ZIP_MEMBERS, whole=True)),
            max_uncompressed_bytes=int(
                _number(env, ENV_MAX_UNCOMPRESSED_BYTES, DEFAULT_MAX_UNCOMPRESSED_BYTES, whole=True)
            ),
            max_compression_ratio=_number(
                env, ENV_MAX_COMPRESSION_RATIO, DEFAULT_MAX_COMPRESSION_RATIO, whole=False
            ),
            max_line_bytes=int(_number(env, ENV_MAX_LINE_BYTES, DEFAULT_MAX_LINE_BYTES, whole=True)),
        )

    # ------------------------------------------------------------------------------ zip archives
    def check_zip_entries(self, file: BinaryIO | IO[bytes], name: str) -> None:
        """Refuse a zip whose end record declares more entries than allowed, before `ZipFile` reads them all.

        A file without an end record is left to `ZipFile`, which reports it as not a zip.
        """
        count = _declared_entry_count(file)
        if count is not None and count > self.max_zip_members:
            raise FileLimitError(
                name,
                f"the zip directory declares {count:,} entries, more than the limit of"
                f" {self.max_zip_members:,} ({ENV_MAX_ZIP_MEMBERS}); refused before reading any member."
                f" If the archive is genuine, raise {ENV_MAX_ZIP_MEMBERS}.",
                setting=ENV_MAX_ZIP_MEMBERS,
                limit=self.max_zip_members,
            )

    def check_member(self, archive: str, info: zipfile.ZipInfo, *, member: str | None = None) -> None:
        """Refuse a member whose declared uncompressed size or compression ratio is over the limit.

        `member` is the name errors show (default: the member's path in the zip).
        """
        member = member or info.filename
        self._check_size(archive, member, info.file_size, "declared in the zip directory")
        if info.file_size < RATIO_CHECKED_FROM_BYTES:
            return
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > self.max_compression_ratio:
            raise FileLimitError(
                archive,
                f"compression ratio {ratio:,.0f}:1 ({info.file_size:,} bytes from {info.compress_size:,},"
                f" declared in the zip directory) is over the limit of {self.max_compression_ratio:g}:1"
                f" ({ENV_MAX_COMPRESSION_RATIO}): a zip bomb? Refused before reading it; if the archive is"
                f" genuine, raise {ENV_MAX_COMPRESSION_RATIO}.",
                setting=ENV_MAX_COMPRESSION_RATIO,
                limit=self.max_compression_ratio,
                member=member,
            )

    def open_member(
        self,
        archive_file: zipfile.ZipFile,
        archive: str,
        info: zipfile.ZipInfo,
        *,
        member: str | None = None,
    ) -> BinaryIO:
        """`check_member`, then the member as a stream that stops once more than its limit was inflated."""
        self.check_member(archive, info, member=member)
        limit = min(info.file_size, self.max_uncompressed_bytes)
        return self.counted(archive_file.open(info), archive, member=member or info.filename, limit=limit)

    # ------------------------------------------------------------------------------ any file
    def check_file_size(self, name: str, size: int) -> None:
        """Refuse a plain file larger than `max_uncompressed_bytes` (from its `stat`, before reading it)."""
        self._check_size(name, None, size, "from the file system")

    def counted(
        self,
        stream: IO[bytes],
        file: str,
        *,
        member: str | None = None,
        limit: int | None = None,
        close_stream: bool = True,
    ) -> BinaryIO:
        """`stream`, raising `FileLimitError` as soon as more than `limit` bytes were read from it.

        `limit` defaults to `max_uncompressed_bytes`; big reads go straight through (no extra copy). Closing
        the result closes `stream` unless `close_stream=False` (a stream the caller owns).
        """
        limit = self.max_uncompressed_bytes if limit is None else limit
        raw = _CountedReader(stream, self, file, member, limit, close_stream)
        return io.BufferedReader(raw, buffer_size=1 << 16)

    def line_too_long(self, file: str, line: int, *, member: str | None = None) -> FileLimitError:
        """The error for line `line` (1-based) longer than `max_line_bytes`."""
        return FileLimitError(
            file,
            f"line longer than the limit of {self.max_line_bytes:,} bytes ({ENV_MAX_LINE_BYTES}); refused"
            f" without reading the rest of it. If the file is genuine, raise {ENV_MAX_LINE_BYTES}.",
            setting=ENV_MAX_LINE_BYTES,
            limit=self.max_line_bytes,
            member=member,
            line=line,
        )

    def _check_size(self, file: str, member: str | None, size: int, how: str) -> None:
        if size > self.max_uncompressed_bytes:
            raise FileLimitError(
                file,
                f"uncompressed size {size:,} bytes ({how}) is over the limit of"
                f" {self.max_uncompressed_bytes:,} bytes ({ENV_MAX_UNCOMPRESSED_BYTES}); refused before reading"
                f" it. If the file is genuine, raise {ENV_MAX_UNCOMPRESSED_BYTES}.",
                setting=ENV_MAX_UNCOMPRESSED_BYTES,
                limit=self.max_uncompressed_bytes,
                member=member,
            )


class _CountedReader(io.RawIOBase):
    """Counts the bytes read from a stream and refuses to go past a limit."""

    def __init__(
        self,
        inner: IO[bytes],
        limits: FileLimits,
        file: str,
        member: str | None,
        limit: int,
        close_inner: bool,
    ) -> None:
        self._inner = inner
        self._limits = limits
        self._file = file
        self._member = member
        self._limit = limit
        self._close_inner = close_inner
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        readinto = getattr(self._inner, "readinto", None)
        if readinto is not None:
            count = readinto(buffer) or 0
        else:
            data = self._inner.read(len(buffer))
            count = len(data)
            buffer[:count] = data
        self.count += count
        if self.count > self._limit:
            declared = self._limit < self._limits.max_uncompressed_bytes
            what = f"its declared size of {self._limit:,} bytes" if declared else "the limit"
            raise FileLimitError(
                self._file,
                f"more than {self._limit:,} bytes read (counted while reading), over {what}"
                f" ({ENV_MAX_UNCOMPRESSED_BYTES} is {self._limits.max_uncompressed_bytes:,}); refused after"
                f" {self.count:,} bytes.",
                setting=ENV_MAX_UNCOMPRESSED_BYTES,
                limit=self._limit,
                member=self._member,
            )
        return count

    def close(self) -> None:
        try:
            if self._close_inner and not self.closed:
                self._inner.close()
        finally:
            super().close()


def _number(env: Mapping[str, str], name: str, default: float, *, whole: bool) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(int(text.replace("_", ""))) if whole else float(text)
    except ValueError:
        value = float("nan")
    if not value >= 1 or value == float("inf"):
        kind = "whole number of at least 1" if whole else "number of at least 1"
        shown = f"{default:,.0f}" if whole else f"{default:g}"
        raise ConfigurationError(f"{name}={text!r} is not a {kind}; unset it for the default ({shown}).")
    return value


def _declared_entry_count(file: BinaryIO | IO[bytes]) -> int | None:
    """The entry count of the zip's end-of-central-directory record (zip64 too); None without one."""
    start = file.tell()
    try:
        size = file.seek(0, os.SEEK_END)
        tail_bytes = min(size, _END_RECORD_BYTES + _MAX_COMMENT_BYTES + 20)
        file.seek(size - tail_bytes)
        tail = file.read(tail_bytes)
        at = tail.rfind(_END_RECORD)
        if at < 0 or len(tail) < at + _END_RECORD_BYTES:
            return None
        (count,) = struct.unpack_from("<H", tail, at + 10)
        if count != 0xFFFF or at < 20 or tail[at - 20 : at - 16] != _ZIP64_LOCATOR:
            return int(count)
        (record_offset,) = struct.unpack_from("<Q", tail, at - 12)
        file.seek(record_offset)
        record = file.read(56)
        if len(record) < 40 or record[:4] != _ZIP64_END_RECORD:
            return None
        (count64,) = struct.unpack_from("<Q", record, 32)
        return int(count64)
    finally:
        file.seek(start)
