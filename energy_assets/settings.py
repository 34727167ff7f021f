"""Where the platform keeps its files, and the environment variables that steer it.

One place for every environment variable name and every default path, so the CLI, the Dagster
layer and the tests agree. Nothing here touches the network or the database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from energy_assets.errors import ConfigurationError

ENV_HOME = "ENERGY_ASSETS_HOME"
ENV_PG_URL = "ENERGY_PG_URL"
ENV_PG_SERVER_USER = "ENERGY_PG_SERVER_USER"
ENV_PG_PORT = "ENERGY_PG_PORT"
ENV_PG_BINDIR = "ENERGY_PG_BINDIR"
ENV_SOURCE = "ENERGY_ASSETS_SOURCE"
ENV_ENERGY_CHARTS_BASE_URL = "ENERGY_CHARTS_BASE_URL"
ENV_LAKE = "ENERGY_ASSETS_LAKE"
ENV_PG_LOG_CONNECTIONS = "ENERGY_PG_LOG_CONNECTIONS"
ENV_PG_LOG_ROTATION_SIZE_KB = "ENERGY_PG_LOG_ROTATION_SIZE_KB"

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

    def ensure(self) -> Path:
        """Create the data home if needed; an unusable path raises `ConfigurationError` naming it."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{os.getpid()}"
            probe.touch()
            probe.unlink()
        except OSError as error:
            reason = error.strerror or str(error)
            raise ConfigurationError(
                f"The data home {self.root} is not a writable folder ({reason}: {error.filename or self.root}). "
                f"Set {ENV_HOME} to a folder you can write (e.g. `export {ENV_HOME}=$HOME/energy_assets`), or "
                "fix the folder's permissions."
            ) from error
        return self.root

    @property
    def lock_path(self) -> Path:
        """Held (flock) while the managed cluster is created, started, maintained or stopped."""
        return self.root / ".cluster.lock"

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
