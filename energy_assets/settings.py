"""Where the platform keeps its files, and the environment variables that steer it.

One place for the platform-wide environment variable names and default paths, so the CLI, the Dagster
layer and the tests agree (each source names its own in `sources/<source>/settings.py`), and one function,
`environment_problems`, that checks every variable the platform reads, sources included, before any work
starts: the CLI commands that do work and the code location load (`build_defs`) call it first and refuse
to start with one line per problem. Nothing here touches the network or the database.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from energy_assets.errors import ConfigurationError, EnergyAssetsError

ENV_HOME = "ENERGY_ASSETS_HOME"
ENV_PG_URL = "ENERGY_PG_URL"
ENV_PG_SERVER_USER = "ENERGY_PG_SERVER_USER"
ENV_PG_PORT = "ENERGY_PG_PORT"
ENV_PG_BINDIR = "ENERGY_PG_BINDIR"
ENV_SOURCE = "ENERGY_ASSETS_SOURCE"
ENV_LAKE = "ENERGY_ASSETS_LAKE"
ENV_PG_LOG_CONNECTIONS = "ENERGY_PG_LOG_CONNECTIONS"
ENV_PG_LOG_ROTATION_SIZE_KB = "ENERGY_PG_LOG_ROTATION_SIZE_KB"

DATA_DATABASE = "energy"
DAGSTER_DATABASE = "dagster"
SOURCES = ("sample", "live")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def parse_source(value: str | None, setting: str = ENV_SOURCE) -> str:
    """`sample` (bundled data, offline; the default when empty) or `live`."""
    source = (value or "").strip().lower() or "sample"
    if source not in SOURCES:
        raise ConfigurationError(
            f"{setting}={value!r} is not a source; use `sample` (bundled data) or `live`."
        )
    return source


def parse_http_url(value: str, setting: str) -> str:
    """An http(s) URL without its trailing slash."""
    text = value.strip()
    if not text.startswith(("http://", "https://")) or len(text.split("://", 1)[1].strip("/")) == 0:
        raise ConfigurationError(f"{setting}={value!r} must be an http:// or https:// URL.")
    return text.rstrip("/")


def parse_switch(value: str | None, setting: str) -> bool:
    """`1/true/yes/on` -> True, `0/false/no/off`/unset -> False; anything else is a configuration error."""
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(f"{setting}={value!r}: expected 1/0, true/false, yes/no or on/off")


def environment_problems(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every problem with the environment variables the platform reads, one line each (empty: all fine)."""
    # Imported here: the source settings modules import this module for the shared names.
    from energy_assets.sources.meters.settings import meter_settings_problems

    env = os.environ if environ is None else environ
    problems = []
    for check in _environment_checks():
        try:
            check(env)
        except (EnergyAssetsError, ValueError) as error:
            problems.append(str(error))
    problems.extend(meter_settings_problems(env))
    return [" ".join(problem.split()) for problem in problems]


def validate_environment(environ: Mapping[str, str] | None = None) -> None:
    """Raise `ConfigurationError` listing every problem (one per line) of `environment_problems`."""
    problems = environment_problems(environ)
    if problems:
        raise ConfigurationError("\n".join(problems))


def _environment_checks() -> list[Callable[[Mapping[str, str]], object]]:
    # Imported here: the source settings modules import this module for the shared names.
    from energy_assets.postgres.settings_from_env import external_settings
    from energy_assets.sources.buildings.settings import (
        ENV_BDG2_TIMESTAMP_CONVENTION,
        ENV_BDG2_ZENODO_RECORD,
        ENV_ZENODO_BASE_URL,
        TimestampConvention,
    )
    from energy_assets.sources.buildings.zenodo_records import parse_record_id
    from energy_assets.sources.energy_charts.settings import ENV_ENERGY_CHARTS_BASE_URL
    from energy_assets.warehouse.object_store import is_object_storage, s3_filesystem, s3_root

    def optional(name: str, parse: Callable[[str], object]) -> Callable[[Mapping[str, str]], object]:
        return lambda env: parse(env[name]) if env.get(name, "").strip() else None

    def lake(env: Mapping[str, str]) -> None:
        location = env.get(ENV_LAKE, "").strip()
        if location and is_object_storage(location):
            s3_root(location)
            s3_filesystem(env)

    return [
        lambda env: parse_source(env.get(ENV_SOURCE)),
        optional(ENV_ENERGY_CHARTS_BASE_URL, lambda value: parse_http_url(value, ENV_ENERGY_CHARTS_BASE_URL)),
        optional(ENV_ZENODO_BASE_URL, lambda value: parse_http_url(value, ENV_ZENODO_BASE_URL)),
        optional(
            ENV_BDG2_ZENODO_RECORD, lambda value: _named(ENV_BDG2_ZENODO_RECORD, parse_record_id, value)
        ),
        optional(ENV_BDG2_TIMESTAMP_CONVENTION, TimestampConvention.parse),
        _data_home_problem,
        optional(ENV_PG_URL, external_settings),
        optional(ENV_PG_PORT, parse_port),
        optional(ENV_PG_BINDIR, _bindir_problem),
        lambda env: parse_switch(env.get(ENV_PG_LOG_CONNECTIONS), ENV_PG_LOG_CONNECTIONS),
        optional(ENV_PG_LOG_ROTATION_SIZE_KB, _rotation_size),
        lake,
    ]


def _named(setting: str, parse: Callable[[str], object], value: str) -> object:
    try:
        return parse(value)
    except ConfigurationError as error:
        raise ConfigurationError(f"{setting}: {error}") from None


def parse_port(value: str, setting: str = ENV_PG_PORT) -> int:
    """A TCP port number, 1-65535."""
    text = value.strip()
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigurationError(f"{setting}={value!r} is not a TCP port number (1-65535).")
    return int(text)


def _rotation_size(value: str) -> int:
    if not value.strip().isdigit():
        raise ConfigurationError(f"{ENV_PG_LOG_ROTATION_SIZE_KB}={value!r} is not a size in kB (e.g. 10240).")
    return int(value)


def _bindir_problem(value: str) -> None:
    bindir = Path(value).expanduser()
    missing = [name for name in ("initdb", "pg_ctl") if not (bindir / name).is_file()]
    if missing:
        raise ConfigurationError(
            f"{ENV_PG_BINDIR}={value} does not contain initdb and pg_ctl (missing: {', '.join(missing)}); point it"
            " at the bin folder of a PostgreSQL server installation, or unset it to search the usual places."
        )


def _data_home_problem(env: Mapping[str, str]) -> None:
    """A data home under a file can never be created (writability is checked when it is created)."""
    value = env.get(ENV_HOME, "").strip()
    if not value:
        return
    root = Path(value).expanduser().resolve()
    for folder in (root, *root.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ConfigurationError(
                    f"The data home {root} is not a writable folder (Not a directory: {folder}). Set {ENV_HOME}"
                    f" to a folder you can write (e.g. `export {ENV_HOME}=$HOME/energy_assets`)."
                )
            return


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
