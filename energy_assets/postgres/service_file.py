"""Connection service files (`pg_service.conf`): a service's parameters, looked up and read as libpq does.

libpq has no call that returns a service's parameters without connecting, so this follows its
`parseServiceInfo` and `parseServiceFile` (src/interfaces/libpq/fe-connect.c):

- the service is the `service` parameter, else PGSERVICE;
- the file is PGSERVICEFILE, else `~/.pg_service.conf` when it exists; when the service is not in it,
  `PGSYSCONFDIR/pg_service.conf` (the directory compiled into libpq is not visible from Python: set
  PGSYSCONFDIR or PGSERVICEFILE for a system-wide file);
- `[name]` starts a section; `keyword=value` lines (no spaces around `=`), `#` comments; within the
  section the first value of a keyword wins; an unknown keyword, a line without `=` or a nested
  `service=` is an error; a service found nowhere is an error.

The values found are passed to libpq explicitly (they win over what libpq would read again), so the
`sslmode` and `sslrootcert` this project checks are exactly the ones libpq connects with.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from pathlib import Path

from energy_assets.errors import ConfigurationError
from energy_assets.postgres.connection import libpq_options


def _home_directory(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("HOME") or pwd.getpwuid(os.geteuid()).pw_dir)


def _read_section(path: Path, service: str) -> dict[str, str] | None:
    """The parameters of `[service]` in the file at `path`, or None when it has no such section."""
    known = libpq_options()
    values: dict[str, str] | None = None
    for number, raw in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            if values is not None:
                break
            if line.startswith(f"[{service}]"):
                values = {}
            continue
        if values is None:
            continue
        keyword, equals, value = line.partition("=")
        if not equals:
            raise ConfigurationError(f"{path}, line {number}: expected keyword=value in service {service!r}.")
        if keyword == "service":
            raise ConfigurationError(f"{path}, line {number}: a service cannot name another service.")
        if keyword not in known:
            raise ConfigurationError(
                f"{path}, line {number}: {keyword!r} is not a libpq connection parameter (write keyword=value "
                "without spaces around '=')."
            )
        values.setdefault(keyword, value)
    return values


def service_parameters(service: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parameters of connection service `service`, from the files libpq reads (see the module doc)."""
    environ = os.environ if environ is None else environ
    candidates: list[Path] = []
    if environ.get("PGSERVICEFILE"):
        user_file = Path(environ["PGSERVICEFILE"])
        if not user_file.is_file():
            raise ConfigurationError(f"PGSERVICEFILE={user_file} does not exist.")
        candidates.append(user_file)
    elif (default := _home_directory(environ) / ".pg_service.conf").is_file():
        candidates.append(default)
    if environ.get("PGSYSCONFDIR"):
        candidates.append(Path(environ["PGSYSCONFDIR"]) / "pg_service.conf")
    for path in candidates:
        if path.is_file() and (values := _read_section(path, service)) is not None:
            return values
    looked = ", ".join(str(path) for path in candidates) or "no service file (PGSERVICEFILE is not set)"
    raise ConfigurationError(
        f"Connection service {service!r} (from PGSERVICE or service=) is not defined in {looked}; add a "
        f"[{service}] section there or point PGSERVICEFILE at the file that has it."
    )
