"""Where the platform keeps its files, and the environment variables that steer it.

One place for every environment variable name and every default path, so the CLI, the Dagster
layer and the tests agree. Nothing here touches the network or the database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_HOME = "ENERGY_ASSETS_HOME"
ENV_PG_URL = "ENERGY_PG_URL"
ENV_PG_SERVER_USER = "ENERGY_PG_SERVER_USER"
ENV_PG_PORT = "ENERGY_PG_PORT"
ENV_PG_BINDIR = "ENERGY_PG_BINDIR"
ENV_SOURCE = "ENERGY_ASSETS_SOURCE"
ENV_ENERGY_CHARTS_BASE_URL = "ENERGY_CHARTS_BASE_URL"
ENV_LAKE = "ENERGY_ASSETS_LAKE"

DEFAULT_ENERGY_CHARTS_BASE_URL = "https://api.energy-charts.info"
DATA_DATABASE = "energy"
DAGSTER_DATABASE = "dagster"


def default_home() -> Path:
    """The data home when `ENERGY_ASSETS_HOME` is unset.

    Root gets a system location (`/var/lib/energy_assets`) because the managed PostgreSQL server runs
    as an unprivileged user that cannot enter `/root`; everybody else gets the XDG data directory.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/energy_assets")
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "energy_assets"


@dataclass(frozen=True)
class DataHome:
    """The folder that holds the CA, the managed cluster, the Parquet lake and the Dagster home."""

    root: Path

    @classmethod
    def from_env(cls) -> DataHome:
        value = os.environ.get(ENV_HOME)
        return cls(Path(value).expanduser().resolve() if value else default_home())

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    @property
    def cluster_dir(self) -> Path:
        return self.root / "postgres"

    @property
    def lake_dir(self) -> Path:
        value = os.environ.get(ENV_LAKE)
        return Path(value).expanduser() if value else self.root / "lake"

    @property
    def raw_dir(self) -> Path:
        return self.root / "raw"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"
