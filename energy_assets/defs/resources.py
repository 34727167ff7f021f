"""Dagster resources shared by every source: PostgreSQL, the Parquet lake, the certificate authority.

Keep asset logic out of this module: it only turns configuration into the domain objects of
`energy_assets.postgres`, `energy_assets.warehouse` and `energy_assets.tls`.
"""

import os
from pathlib import Path

import dagster as dg
import psycopg
from pydantic import Field, PrivateAttr

from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.postgres.settings_from_env import external_settings
from energy_assets.settings import DATA_DATABASE, ENV_LAKE, DataHome
from energy_assets.tls.ca import CertificateAuthority
from energy_assets.warehouse.object_store import is_object_storage, open_lake
from energy_assets.warehouse.parquet_store import ParquetStore


def _data_home(path: str | None) -> DataHome:
    return DataHome(Path(path)) if path else DataHome.from_env()


class PostgresResource(dg.ConfigurableResource):
    """PostgreSQL over verified TLS: an external server from `url`, else the project's managed cluster.

    `url` is a libpq URI (set it with `dg.EnvVar("ENERGY_PG_URL")`); libpq's PG* variables fill in what
    it leaves out. Without a URL, the managed cluster under the data home is created and started.
    """

    url: str | None = Field(default=None, description="libpq URI of an external server (ENERGY_PG_URL).")
    password: str | None = Field(default=None, description="Password; prefer EnvVar over plain text.")
    sslrootcert: str | None = Field(default=None, description="CA file that signed the server certificate.")
    database: str = Field(default=DATA_DATABASE, description="Database holding the energy data.")
    allow_unverified_tls: bool = Field(default=False, description="Accept sslmode other than verify-full.")
    data_home: str | None = Field(
        default=None, description="Data home; empty for ENERGY_ASSETS_HOME/default."
    )

    _settings: PostgresSettings | None = PrivateAttr(default=None)

    def settings(self) -> PostgresSettings:
        """Resolved once per resource instance (a run): starting or checking the cluster is not free."""
        if self._settings is None:
            self._settings = self._resolve_settings()
        return self._settings

    def _resolve_settings(self) -> PostgresSettings:
        if self.url:
            settings = external_settings(
                self.url,
                password=self.password,
                sslrootcert=self.sslrootcert,
                allow_unverified_tls=self.allow_unverified_tls,
            )
            return settings.with_database(self.database) if self.database != DATA_DATABASE else settings
        return ManagedCluster(_data_home(self.data_home)).ensure_running(self.database)

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection:
        return connect(self.settings(), autocommit=autocommit)


class CertificateAuthorityResource(dg.ConfigurableResource):
    """The project's certificate authority under the data home."""

    data_home: str | None = Field(
        default=None, description="Data home; empty for ENERGY_ASSETS_HOME/default."
    )

    def authority(self) -> CertificateAuthority:
        return CertificateAuthority.init(_data_home(self.data_home).ca_dir)[0]


class LakeResource(dg.ConfigurableResource):
    """The Parquet lake: `path`, else ENERGY_ASSETS_LAKE, else `<data home>/lake`.

    Either is a folder or an S3 URI, `s3://bucket/prefix`, reached through `pyarrow.fs.S3FileSystem` with
    the standard AWS variables (`AWS_REGION`, `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`, `AWS_CA_BUNDLE`;
    credentials read by the AWS SDK from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` or `~/.aws`, never
    from this resource's configuration). Raw documents and refused candidates stay on local disk.
    """

    path: str | None = Field(default=None, description="Lake root: a folder, or s3://bucket/prefix.")
    data_home: str | None = Field(
        default=None, description="Data home; empty for ENERGY_ASSETS_HOME/default."
    )

    def location(self) -> str:
        """The configured lake: a folder path or an `s3://` URI."""
        if self.path:
            return self.path
        from_env = os.environ.get(ENV_LAKE)
        if from_env and is_object_storage(from_env):
            return from_env
        return str(_data_home(self.data_home).lake_dir)

    def on_object_storage(self) -> bool:
        return is_object_storage(self.location())

    def root(self) -> Path:
        """The lake's local folder; for a lake on S3, `<data home>/lake`, used for local scratch files only."""
        if self.on_object_storage():
            return _data_home(self.data_home).root / "lake"
        return Path(self.path) if self.path else _data_home(self.data_home).lake_dir

    def raw_dir(self) -> Path:
        """Where raw source responses are kept, beside the lake (in the data home for a lake on S3)."""
        if not self.path or self.on_object_storage():
            return _data_home(self.data_home).raw_dir
        return Path(self.path).parent / "raw"

    def rejected_dir(self) -> Path:
        """Where refused candidates are kept with their audit reports, beside the lake."""
        return self.raw_dir().parent / "rejected"

    def store(self) -> ParquetStore:
        if self.on_object_storage():
            return open_lake(self.location())
        return ParquetStore(self.root())
