"""Finding the PostgreSQL server binaries (`initdb`, `pg_ctl`) on this machine.

Looked up in order: `ENERGY_PG_BINDIR`, `PATH`, then the usual package locations (Debian/Ubuntu
`/usr/lib/postgresql/<major>/bin`, RHEL `/usr/pgsql-<major>/bin`, Homebrew). Version 13 or newer.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from energy_assets.errors import ClusterError
from energy_assets.settings import ENV_PG_BINDIR

MINIMUM_MAJOR_VERSION = 13
_SEARCH_GLOBS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
    "/usr/local/pgsql/bin",
)
INSTALL_HINT = (
    "Install the PostgreSQL server (Debian/Ubuntu: `apt-get install postgresql`; RHEL: "
    "`dnf install postgresql-server`; macOS: `brew install postgresql@16`), or set ENERGY_PG_BINDIR to the "
    "folder holding initdb and pg_ctl, or point ENERGY_PG_URL at an external PostgreSQL server."
)


@dataclass(frozen=True)
class PostgresBinaries:
    """Paths of the server programs and their major version."""

    bindir: Path
    major_version: int

    @property
    def initdb(self) -> str:
        return str(self.bindir / "initdb")

    @property
    def pg_ctl(self) -> str:
        return str(self.bindir / "pg_ctl")


def _major_version(bindir: Path) -> int:
    output = subprocess.run(
        [str(bindir / "initdb"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", output)
    if not match:
        raise ClusterError(f"Cannot read the version of {bindir / 'initdb'} from {output!r}.")
    return int(match.group(1))


def _candidates() -> list[Path]:
    found: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        found.append(Path(on_path).resolve().parent)
    globbed: list[Path] = []
    for pattern in _SEARCH_GLOBS:
        globbed.extend(Path("/").glob(pattern.lstrip("/")))

    def version_key(path: Path) -> int:
        match = re.search(r"(\d+)", str(path))
        return int(match.group(1)) if match else 0

    found.extend(sorted(globbed, key=version_key, reverse=True))
    return found


def find_binaries() -> PostgresBinaries:
    """Locate initdb/pg_ctl, or raise a `ClusterError` that says how to install them."""
    configured = os.environ.get(ENV_PG_BINDIR)
    candidates = [Path(configured)] if configured else _candidates()
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            major = _major_version(bindir)
            if major < MINIMUM_MAJOR_VERSION:
                raise ClusterError(
                    f"PostgreSQL {major} in {bindir} is too old; version {MINIMUM_MAJOR_VERSION}+ is needed. "
                    + INSTALL_HINT
                )
            return PostgresBinaries(bindir=bindir, major_version=major)
    if configured:
        raise ClusterError(
            f"ENERGY_PG_BINDIR={configured} does not contain initdb and pg_ctl. " + INSTALL_HINT
        )
    raise ClusterError("PostgreSQL server binaries (initdb, pg_ctl) were not found. " + INSTALL_HINT)
