"""The download cache: one verified file per (namespace, record id, file key), published atomically.

Layout: `<root>/<namespace>/<record id>/<file key>`; the key keeps its `/` as sub-folders
(`zenodo.org/3887306/buds-lab/building-data-genome-project-2-v1.0.zip`). A new version of a record has a new record
id, hence a new cache entry; the namespace (the server's host, or `sample`) keeps the sandbox, the real Zenodo and
the bundled sample apart. While downloading, bytes go to `<entry>.part` (kept across runs so a broken download
resumes) with the server's validator (ETag or Last-Modified) in `<entry>.part.json` for `If-Range`. Only a file
whose size and md5 match the record is renamed into place; a mismatch deletes the partial file, so nothing
unverified is ever published. Cached files are read as regular files only: a symbolic link or fifo put in
the cache is refused (`NotARegularFileError`), never followed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from energy_assets.files import check_regular_file, open_regular_file, promote_file
from energy_assets.sources.buildings.errors import ChecksumMismatchError
from energy_assets.sources.buildings.zenodo_records import ZenodoFile

HASH_CHUNK_BYTES = 4 << 20


def file_md5(path: str | Path) -> str:
    """The md5 of a file as lower-case hex, read in chunks (a link or fifo is refused unread)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open_regular_file(path) as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class CachedFile:
    """A verified file in the cache and how it got there."""

    path: Path
    file: ZenodoFile
    downloaded: bool  # False when an earlier verified copy was reused
    resumed_from_bytes: int = 0
    restarts: int = 0  # times the download started again from byte 0 (range ignored, 416, changed file)


class DownloadCache:
    """A folder of verified downloads (see module docstring)."""

    def __init__(self, root: str | Path, namespace: str) -> None:
        self.root = Path(root)
        self.namespace = _safe_part(namespace, "namespace")

    def path_for(self, file: ZenodoFile) -> Path:
        parts = [_safe_part(part, f"file key {file.key!r}") for part in file.key.split("/")]
        return self.root.joinpath(self.namespace, str(file.record_id), *parts)

    def part_path(self, file: ZenodoFile) -> Path:
        final = self.path_for(file)
        return final.with_name(final.name + ".part")

    def validator_path(self, file: ZenodoFile) -> Path:
        final = self.path_for(file)
        return final.with_name(final.name + ".part.json")

    def lookup(self, file: ZenodoFile, *, verify_md5: bool = True) -> CachedFile | None:
        """The cached copy if it is there and matches the record (size, and md5 unless `verify_md5=False`).

        A copy that no longer matches (changed on disk) is deleted so that it is downloaded again.
        """
        path = self.path_for(file)
        try:
            size = check_regular_file(path).st_size
        except FileNotFoundError:
            return None
        if size == file.size and (not verify_md5 or file_md5(path) == file.md5):
            return CachedFile(path=path, file=file, downloaded=False)
        path.unlink()
        return None

    def read_validator(self, file: ZenodoFile) -> str | None:
        try:
            return json.loads(self.validator_path(file).read_text("utf-8")).get("validator")
        except (FileNotFoundError, ValueError):
            return None

    def write_validator(self, file: ZenodoFile, validator: str | None) -> None:
        path = self.validator_path(file)
        if validator:
            path.write_text(json.dumps({"validator": validator}), "utf-8")
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def discard_partial(self, file: ZenodoFile) -> None:
        for path in (self.part_path(file), self.validator_path(file)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def verify_and_publish(
        self, file: ZenodoFile, *, resumed_from_bytes: int = 0, restarts: int = 0
    ) -> CachedFile:
        """Check the partial file's size and md5 against the record, then rename it into place (atomic).

        On a mismatch the partial file is deleted and `ChecksumMismatchError` raised: nothing is cached.
        """
        part = self.part_path(file)
        size = part.stat().st_size
        if size != file.size:
            self.discard_partial(file)
            raise ChecksumMismatchError(file.key, "size", f"{file.size:,} bytes", f"{size:,} bytes")
        actual = file_md5(part)
        if actual != file.md5:
            self.discard_partial(file)
            raise ChecksumMismatchError(file.key, "md5", file.md5, actual)
        final = self.path_for(file)
        promote_file(part, final)
        self.write_validator(file, None)
        return CachedFile(
            path=final, file=file, downloaded=True, resumed_from_bytes=resumed_from_bytes, restarts=restarts
        )


def _safe_part(part: str, what: str) -> str:
    if not part or part in (".", "..") or "\\" in part or "\x00" in part or "/" in part:
        raise ValueError(f"{what}: {part!r} cannot be a path component of the download cache")
    return part
