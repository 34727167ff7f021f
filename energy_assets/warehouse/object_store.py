"""Where the Parquet lake lives: a local folder, or an S3 bucket and prefix (`s3://bucket/prefix`).

`open_lake(location)` returns the `ParquetStore` for either. For S3 it builds a `pyarrow.fs.S3FileSystem`
from the standard AWS variables, so no secret passes through project configuration:

- credentials: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `~/.aws/credentials`,
  read by the AWS SDK inside pyarrow (never by this module);
- `AWS_REGION` (or `AWS_DEFAULT_REGION`), required: without it the SDK would guess, possibly by asking the
  EC2 metadata service;
- `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`) for an S3-compatible server such as MinIO, Ceph or moto,
  e.g. `https://minio.internal:9000`; plain `http://` only on loopback;
- `AWS_CA_BUNDLE`: PEM file of the CA that signed the endpoint's certificate (a private CA).

What does not belong here: reading or writing partitions (`parquet_store`), Dagster.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from energy_assets.errors import ConfigurationError
from energy_assets.warehouse.parquet_store import ParquetStore

S3_SCHEME = "s3://"
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
CA_BUNDLE_VARIABLE = "AWS_CA_BUNDLE"


def is_object_storage(location: str | Path) -> bool:
    """True for an `s3://` lake location."""
    return str(location).startswith(S3_SCHEME)


def s3_root(location: str) -> str:
    """`s3://bucket/prefix/` -> `bucket/prefix`, the root pyarrow's S3 filesystem expects."""
    root = location[len(S3_SCHEME) :].rstrip("/")
    bucket = root.split("/", 1)[0]
    if not bucket or any(part in ("", ".", "..") for part in root.split("/")):
        raise ConfigurationError(
            f"Lake location {location!r} is not a usable S3 URI: write s3://<bucket>/<prefix>, without empty,"
            " '.' or '..' segments."
        )
    return root


def s3_filesystem(environ: Mapping[str, str] | None = None) -> pafs.S3FileSystem:
    """An S3 filesystem configured from the AWS variables (see the module docstring)."""
    environ = os.environ if environ is None else environ
    region = _first(environ, REGION_VARIABLES)
    if not region:
        raise ConfigurationError(
            "The lake is on S3 but no region is set: export AWS_REGION (e.g. eu-central-1; any value, such as"
            " us-east-1, for an S3-compatible server that ignores regions)."
        )
    options: dict[str, object] = {"region": region}
    endpoint = _first(environ, ENDPOINT_VARIABLES)
    if endpoint:
        scheme, host = _split_endpoint(endpoint)
        options.update(endpoint_override=host, scheme=scheme)
    ca_bundle = environ.get(CA_BUNDLE_VARIABLE)
    if ca_bundle:
        if not os.path.isfile(ca_bundle):
            raise ConfigurationError(f"{CA_BUNDLE_VARIABLE}={ca_bundle} is not a file.")
        options["tls_ca_file_path"] = ca_bundle
    return pafs.S3FileSystem(**options)


def open_lake(location: str | Path, environ: Mapping[str, str] | None = None) -> ParquetStore:
    """The lake at `location`: a local folder, or `s3://bucket/prefix` on S3."""
    if is_object_storage(location):
        return ParquetStore(s3_root(str(location)), filesystem=s3_filesystem(environ))
    return ParquetStore(location)


def _first(environ: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((environ[name] for name in names if environ.get(name)), None)


def _split_endpoint(endpoint: str) -> tuple[str, str]:
    """`https://host:port` -> ("https", "host:port"); plain HTTP is refused unless the host is loopback."""
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigurationError(
            f"S3 endpoint {endpoint!r} ({'/'.join(ENDPOINT_VARIABLES)}) must look like https://host[:port]."
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigurationError(
            f"S3 endpoint {endpoint!r} uses plain HTTP to a host that is not loopback: credentials and data"
            " would cross the network unencrypted. Use https:// (with AWS_CA_BUNDLE for a private CA)."
        )
    return parts.scheme, parts.netloc


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
