"""Dagster layer of a declared file source: its assets, inbox sensor, ingest job and resource.

`file_source_definitions(declaration)` is what the `FileSource` component builds; `build_defs` supplies
the `lake` and `postgres` resources. `ingest_files` runs the sensor's job for given files (the
`energy-assets source ingest` command).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from energy_assets.defs.file_source.assets import mart_assets, raw_key, records_asset, resource_key
from energy_assets.defs.file_source.resources import FileSourceResource
from energy_assets.defs.file_source.sensors import inbox_sensor, ingest_job
from energy_assets.sources.files.declaration import FileSourceDeclaration
from energy_assets.sources.meters.settings import ENV_NMI_FERNET_KEYS, ENV_NMI_HMAC_KEY


def inbox_folder(declaration: FileSourceDeclaration) -> Path:
    """The declared inbox (relative: to the data home), else `<data home>/inbox/<name>`."""
    from energy_assets.settings import DataHome

    root = DataHome.from_env().root
    if declaration.inbox:
        inbox = Path(declaration.inbox).expanduser()
        return inbox if inbox.is_absolute() else root / inbox
    return root / "inbox" / declaration.name


def file_source_definitions(declaration: FileSourceDeclaration) -> dg.Definitions:
    records = records_asset(declaration)
    marts = mart_assets(declaration)
    job = ingest_job(declaration, [records, *marts])
    sensor = inbox_sensor(declaration, job, records.op.name)
    resource = FileSourceResource(
        inbox=str(inbox_folder(declaration)),
        hmac_key=dg.EnvVar(ENV_NMI_HMAC_KEY) if os.environ.get(ENV_NMI_HMAC_KEY) else None,
        fernet_keys=dg.EnvVar(ENV_NMI_FERNET_KEYS) if os.environ.get(ENV_NMI_FERNET_KEYS) else None,
    )
    return dg.Definitions(
        assets=[records, *marts],
        jobs=[job],
        sensors=[sensor],
        resources={resource_key(declaration): resource},
    )


__all__ = ["FileSourceResource", "file_source_definitions", "inbox_folder", "raw_key", "resource_key"]
