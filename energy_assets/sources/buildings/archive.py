"""The BDG2 zip: find and open its members by their path below the top folder.

The Zenodo zip is a GitHub snapshot: one top folder (`buds-lab-building-data-genome-project-2-3d0cbaf/`), then
`data/meters/raw/<meter>.csv`, `data/meters/cleaned/<meter>_cleaned.csv`, `data/metadata/metadata.csv` and
`data/weather/weather.csv`. Members are located by the path below the top folder, whatever the folder is called
(it changes with the commit), and never by substring. A file that is not a zip, a member that fails its CRC,
a missing member and a Git LFS pointer standing in for data each raise their own `Bdg2ArchiveError`.

The archive is opened as a regular file only (a symbolic link or fifo is refused unread), and within the
limits of `energy_assets.archive_limits`: the entry count is checked before the directory is read, each
member's declared size and compression ratio before it is opened, and its bytes are counted while it is read,
so a zip bomb is refused fast and in bounded memory with a `FileLimitError` naming archive, member and setting.
"""

from __future__ import annotations

import enum
import zipfile
import zlib
from pathlib import Path
from typing import IO

from energy_assets.archive_limits import FileLimits
from energy_assets.files import open_regular_file
from energy_assets.sources.buildings.errors import CorruptArchiveError, LfsPointerError, MissingMemberError

METERS: tuple[str, ...] = (
    "electricity",
    "chilledwater",
    "steam",
    "hotwater",
    "gas",
    "water",
    "irrigation",
    "solar",
)
METADATA_MEMBER = "data/metadata/metadata.csv"
WEATHER_MEMBER = "data/weather/weather.csv"
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"


class MeterKind(str, enum.Enum):
    """Which meter files: BDG2's `cleaned` series (the default) or the `raw` ones."""

    CLEANED = "cleaned"
    RAW = "raw"


def meter_member(meter: str, kind: MeterKind | str = MeterKind.CLEANED) -> str:
    """`data/meters/cleaned/electricity_cleaned.csv` or `data/meters/raw/electricity.csv`."""
    kind = MeterKind(kind)
    if meter not in METERS:
        raise ValueError(f"unknown BDG2 meter {meter!r}; the meters are: {', '.join(METERS)}")
    if kind is MeterKind.CLEANED:
        return f"data/meters/cleaned/{meter}_cleaned.csv"
    return f"data/meters/raw/{meter}.csv"


def lfs_pointer_message(where: str, head: bytes) -> str:
    """What a Git LFS pointer file is and what to do instead."""
    lines = head.decode("utf-8", "replace").splitlines()
    detail = "; ".join(line for line in lines[1:3] if line)
    return (
        f"{where} is a Git LFS pointer file ({detail}), not data: git copies of BDG2 hold such pointers. Download"
        " the Zenodo record (BDG2_ZENODO_RECORD) or run `git lfs pull` in the copy."
    )


class Bdg2Archive:
    """An open BDG2 zip; use as a context manager or call `close()`. `limits` default to the environment's."""

    def __init__(self, path: str | Path, *, limits: FileLimits | None = None) -> None:
        self.path = Path(path)
        self.limits = FileLimits.from_env() if limits is None else limits
        self._file = open_regular_file(self.path)
        try:
            self.limits.check_zip_entries(self._file, self.path.name)
            self._zip = zipfile.ZipFile(self._file)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            head = _head(self._file)
            self._file.close()
            if head.startswith(LFS_POINTER_PREFIX):
                raise LfsPointerError(lfs_pointer_message(str(self.path), head)) from None
            raise CorruptArchiveError(
                f"{self.path} is not a readable zip ({exc}); delete it from the download cache and download again"
            ) from exc
        except BaseException:
            self._file.close()
            raise
        names = [info for info in self._zip.infolist() if not info.is_dir()]
        tops = {info.filename.split("/", 1)[0] for info in names}
        # `data/` at the root means there is no top folder to strip.
        strip_top = len(tops) == 1 and tops != {"data"} and all("/" in info.filename for info in names)
        self.top_folder: str | None = tops.pop() if strip_top else None
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in names:
            relative = info.filename.split("/", 1)[1] if strip_top else info.filename
            self.members[relative] = info

    def __enter__(self) -> Bdg2Archive:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()
        self._file.close()

    def describe(self, member: str) -> str:
        """`<archive name>:<member>`, as errors name members."""
        return f"{self.path.name}:{member}"

    def info(self, member: str) -> zipfile.ZipInfo:
        """The zip entry of `member` (a path below the top folder); raises `MissingMemberError`."""
        try:
            return self.members[member]
        except KeyError:
            folder = member.rsplit("/", 1)[0] + "/"
            nearby = sorted(name for name in self.members if name.startswith(folder))
            listing = ", ".join(nearby) if nearby else "nothing"
            raise MissingMemberError(
                f"{self.path.name} has no member {member!r} (below the top folder {self.top_folder!r}); {folder}"
                f" holds: {listing}. Is this the BDG2 v1.0 archive?"
            ) from None

    def available_meters(self, kind: MeterKind | str = MeterKind.CLEANED) -> list[str]:
        """The meters whose file of this kind is in the archive, in `METERS` order."""
        return [meter for meter in METERS if meter_member(meter, kind) in self.members]

    def open(self, member: str) -> IO[bytes]:
        """A binary stream of the member, within the limits; refuses Git LFS pointers and empty members."""
        info = self.info(member)
        head = self.read_head(member)
        if head.startswith(LFS_POINTER_PREFIX):
            raise LfsPointerError(lfs_pointer_message(self.describe(member), head))
        if info.file_size == 0:
            raise CorruptArchiveError(f"{self.describe(member)} is empty (0 bytes)")
        return self.limits.open_member(self._zip, self.path.name, info, member=member)

    def read_head(self, member: str, size: int = 256) -> bytes:
        """The first `size` bytes of the member (after checking its declared size and ratio)."""
        info = self.info(member)
        self.limits.check_member(self.path.name, info, member=member)
        try:
            with self._zip.open(info) as stream:
                return stream.read(size)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise CorruptArchiveError(f"{self.describe(member)} cannot be read: {exc}") from exc

    def member_size(self, member: str) -> int:
        return self.info(member).file_size


def _head(file: IO[bytes], size: int = 256) -> bytes:
    try:
        file.seek(0)
        return file.read(size)
    except OSError:
        return b""
