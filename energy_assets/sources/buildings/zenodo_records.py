"""Zenodo record and file descriptions, parsed from `GET /api/records/{id}`, and record id / DOI parsing.

Only what the source needs is kept: the record id and its concept id, DOI, version label, publication date and the
files with key, size, md5 and content URL. Both shapes of a checksum are accepted (`md5:<hex>` and the bare hex of
older search hits); any other algorithm is refused because md5 is the only hash Zenodo publishes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from energy_assets.errors import ConfigurationError
from energy_assets.sources.buildings.errors import ZenodoApiError, ZenodoFilesUnavailableError

_DOI = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:)?10\.\d{4,9}/zenodo\.(\d+)$", re.IGNORECASE)
_RECORD_URL = re.compile(r"^https?://[^/]+/(?:api/)?records?/(\d+)(?:[/?#].*)?$", re.IGNORECASE)
_MD5 = re.compile(r"^[0-9a-f]{32}$")


def parse_record_id(value: str | int) -> int:
    """`3887306`, `10.5281/zenodo.3887306`, `https://doi.org/10.5281/zenodo.3887306` or a record URL -> 3887306."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.isdigit():
        return int(text)
    for pattern in (_DOI, _RECORD_URL):
        match = pattern.match(text)
        if match:
            return int(match.group(1))
    raise ConfigurationError(
        f"{value!r} is not a Zenodo record id, DOI (10.5281/zenodo.<id>) or record URL (https://zenodo.org/records/<id>)"
    )


def content_path(record_id: int, key: str) -> str:
    """`/api/records/<id>/files/<key>/content` with the key percent-encoded (`/` becomes `%2F`)."""
    return f"/api/records/{record_id}/files/{quote(key, safe='')}/content"


def parse_md5(checksum: str, *, where: str) -> str:
    """`md5:<hex>` or `<hex>` -> lower-case hex; anything else raises."""
    text = checksum.strip().lower()
    algorithm, _, digest = text.partition(":") if ":" in text else ("md5", "", text)
    if algorithm != "md5" or not _MD5.match(digest):
        raise ZenodoApiError(where, f"unsupported checksum {checksum!r}: expected md5:<32 hex digits>")
    return digest


@dataclass(frozen=True)
class ZenodoFile:
    """One file of a record: its key (may contain `/`), size in bytes, md5 and where to download it."""

    record_id: int
    key: str
    size: int
    md5: str
    content_url: str


@dataclass(frozen=True)
class ZenodoRecord:
    """One published version of a Zenodo record."""

    record_id: int
    concept_record_id: str | None
    doi: str | None
    version: str | None
    publication_date: str | None
    title: str | None
    files: tuple[ZenodoFile, ...]
    latest_url: str | None = None

    def file(self, key: str) -> ZenodoFile:
        """The file with exactly this key (never a substring match)."""
        for item in self.files:
            if item.key == key:
                return item
        listed = ", ".join(item.key for item in self.files) or "none"
        raise ZenodoFilesUnavailableError(
            f"record {self.record_id}",
            f"no file with key {key!r}; the record lists: {listed}. Check the record id and the key.",
        )

    @property
    def version_info(self) -> RecordVersion:
        return RecordVersion(
            record_id=self.record_id,
            concept_record_id=self.concept_record_id,
            doi=self.doi,
            version=self.version,
            publication_date=self.publication_date,
        )


@dataclass(frozen=True)
class RecordVersion:
    """What a sensor needs to notice a new version: the version's record id (a new version is a new id)."""

    record_id: int
    concept_record_id: str | None
    doi: str | None
    version: str | None
    publication_date: str | None

    @property
    def cursor(self) -> str:
        """A sensor cursor: the record id as text."""
        return str(self.record_id)


def parse_record(body: Any, *, base_url: str, url: str) -> ZenodoRecord:
    """A `ZenodoRecord` from the JSON of `GET /api/records/{id}` (legacy-compatible shape).

    Restricted or embargoed records list no files: that raises `ZenodoFilesUnavailableError` naming the access
    right, because a record without files cannot feed the pipeline.
    """
    if not isinstance(body, Mapping) or "id" not in body:
        raise ZenodoApiError(url, "the answer is not a Zenodo record (no `id`)")
    try:
        record_id = int(body["id"])
    except (TypeError, ValueError):
        raise ZenodoApiError(url, f"record `id` {body['id']!r} is not an integer") from None
    metadata = body.get("metadata") or {}
    raw_files = body.get("files")
    if isinstance(raw_files, Mapping):  # InvenioRDM native shape: {"entries": {key: {...}}}
        raw_files = list((raw_files.get("entries") or {}).values())
    files = []
    for item in raw_files or []:
        key = item.get("key") or item.get("filename")
        size = item.get("size", item.get("filesize"))
        checksum = item.get("checksum")
        if not key or size is None or not checksum:
            raise ZenodoApiError(url, f"file entry without key, size or checksum: {dict(item)!r}")
        files.append(
            ZenodoFile(
                record_id=record_id,
                key=str(key),
                size=int(size),
                md5=parse_md5(str(checksum), where=url),
                # Built, not taken from `links.self`: the key's `/` must be percent-encoded, and the host must be
                # the configured one (a mirror, the sandbox, the test server).
                content_url=f"{base_url}{content_path(record_id, str(key))}",
            )
        )
    if not files:
        access = metadata.get("access_right") or (body.get("access") or {}).get("files") or "unknown"
        embargo = metadata.get("embargo_date") or (body.get("access") or {}).get("embargo", {}).get("until")
        detail = f"access_right={access!r}" + (f", embargoed until {embargo}" if embargo else "")
        raise ZenodoFilesUnavailableError(
            url,
            f"record {record_id} lists no downloadable files ({detail}); restricted or embargoed records cannot"
            " be downloaded anonymously: set ZENODO_ACCESS_TOKEN for a token with access, or pick another record",
        )
    links = body.get("links") or {}
    concept = body.get("conceptrecid")
    return ZenodoRecord(
        record_id=record_id,
        concept_record_id=str(concept) if concept is not None else None,
        doi=body.get("doi") or metadata.get("doi"),
        version=metadata.get("version"),
        publication_date=metadata.get("publication_date"),
        title=metadata.get("title") or body.get("title"),
        files=tuple(files),
        latest_url=links.get("latest"),
    )
