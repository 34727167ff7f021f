"""A Zenodo client that serves the bundled sample record, so the whole graph runs offline.

`sample/index.json` lists the recorded records and which bundled file stands for each file key:

    {"records": [{"record": "record_3887306.json",
                  "files": {"buds-lab/building-data-genome-project-2-v1.0.zip": "bdg2_sample.zip"}}]}

The record JSON has the shape of `GET /api/records/{id}`; its size and md5 are the bundled file's, and a download
goes through the same cache, verification and atomic publish as a live one (namespace `sample`, so the sample never
shadows a real download). The bundled zip is synthetic: see `sample_builder`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from energy_assets.sources.buildings.cache import CachedFile, DownloadCache
from energy_assets.sources.buildings.client import ZenodoClient
from energy_assets.sources.buildings.errors import ZenodoRecordNotFoundError
from energy_assets.sources.buildings.zenodo_records import (
    ZenodoFile,
    ZenodoRecord,
    parse_record,
    parse_record_id,
)

SAMPLE_DIR = Path(__file__).parent / "sample"
INDEX_FILE = "index.json"


class SnapshotZenodoClient(ZenodoClient):
    """Answers from recorded records and bundled files; never touches the network."""

    namespace = "sample"

    def __init__(self, root: str | Path = SAMPLE_DIR) -> None:
        self.root = Path(root)
        index = json.loads((self.root / INDEX_FILE).read_text("utf-8"))
        self._records: dict[int, ZenodoRecord] = {}
        self._files: dict[tuple[int, str], Path] = {}
        for item in index["records"]:
            body = json.loads((self.root / item["record"]).read_text("utf-8"))
            record = parse_record(body, base_url="sample:", url=str(self.root / item["record"]))
            self._records[record.record_id] = record
            for key, name in item["files"].items():
                self._files[(record.record_id, key)] = self.root / name

    def describe(self) -> str:
        return f"SnapshotZenodoClient({self.root})"

    def record(self, record: str | int) -> ZenodoRecord:
        record_id = parse_record_id(record)
        try:
            return self._records[record_id]
        except KeyError:
            recorded = ", ".join(str(known) for known in sorted(self._records)) or "none"
            raise ZenodoRecordNotFoundError(
                f"sample:/api/records/{record_id}",
                f"not in the bundled sample (recorded: {recorded}); set ENERGY_ASSETS_SOURCE=live to ask Zenodo",
            ) from None

    def latest_record(self, record: str | int) -> ZenodoRecord:
        """The highest recorded id in the same concept (the sample holds one version)."""
        known = self.record(record)
        family = [
            candidate
            for candidate in self._records.values()
            if candidate.concept_record_id == known.concept_record_id
        ]
        return max(family, key=lambda candidate: candidate.record_id)

    def download(self, file: ZenodoFile, cache: DownloadCache) -> CachedFile:
        cached = cache.lookup(file)
        if cached is not None:
            return cached
        source = self._files.get((file.record_id, file.key))
        if source is None:
            raise ZenodoRecordNotFoundError(f"sample:{file.content_url}", "no bundled file for this key")
        part = cache.part_path(file)
        part.parent.mkdir(parents=True, exist_ok=True)
        with open(source, "rb") as reader, open(part, "wb") as writer:
            shutil.copyfileobj(reader, writer)
        return cache.verify_and_publish(file)
