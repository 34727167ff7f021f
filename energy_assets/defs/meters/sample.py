"""Dropping the bundled NEM12 sample files into the inbox and ingesting them: part of `energy-assets sample run`.

The files go through `ingest_files`, the path the sensor's runs take (audit, quarantine, processed moves);
the second file revises readings of the first, so the history table has rows after the sample. Running the
sample again finds the same contents already processed and moves the copies to `processed/` without loading.
"""

import shutil
import tempfile
from pathlib import Path

import dagster as dg

from energy_assets.defs.meters.ingest import IngestOutcome, ingest_files
from energy_assets.sources.meters.settings import sample_files


def ingest_meters_sample(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[IngestOutcome]:
    staging = Path(tempfile.mkdtemp(prefix="nem12_sample_"))
    try:
        copies = []
        for path in sample_files():
            copies.append(staging / path.name)
            shutil.copy2(path, copies[-1])
        return ingest_files(defs, instance, copies)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
