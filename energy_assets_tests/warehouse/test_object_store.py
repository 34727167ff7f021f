"""Where the lake lives: local folders unchanged, `s3://` URIs configured from the AWS variables."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs
import pytest

from energy_assets.defs.resources import LakeResource
from energy_assets.errors import ConfigurationError
from energy_assets.warehouse.object_store import is_object_storage, open_lake, s3_filesystem, s3_root

LOOPBACK = {"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}


def test_a_folder_stays_a_local_store(tmp_path: Path) -> None:
    store = open_lake(tmp_path / "lake")
    assert store.is_local and store.root == str((tmp_path / "lake").resolve())
    assert not is_object_storage(tmp_path)


def test_an_s3_uri_gives_a_store_on_s3() -> None:
    store = open_lake("s3://energy-lake/prod/lake/", LOOPBACK)
    assert isinstance(store.filesystem, pafs.S3FileSystem)
    assert not store.is_local
    assert store.root == "energy-lake/prod/lake"
    assert store.partition_path("energy_charts.price", {"date": "2024-01-01"}) == (
        "energy-lake/prod/lake/energy_charts.price/date=2024-01-01/part-0.parquet"
    )


@pytest.mark.parametrize("uri", ["s3://", "s3:///prefix", "s3://bucket/../other", "s3://bucket//x"])
def test_unusable_s3_uris_are_refused(uri: str) -> None:
    with pytest.raises(ConfigurationError, match="not a usable S3 URI"):
        s3_root(uri)


def test_s3_needs_a_region() -> None:
    with pytest.raises(ConfigurationError, match="AWS_REGION"):
        s3_filesystem({"AWS_ENDPOINT_URL": "https://minio.internal:9000"})


@pytest.mark.parametrize(
    "endpoint", ["http://minio.internal:9000", "http://10.0.0.5:9000", "ftp://127.0.0.1", "https://h/x"]
)
def test_plain_http_off_loopback_and_odd_endpoints_are_refused(endpoint: str) -> None:
    with pytest.raises(ConfigurationError, match="S3 endpoint"):
        s3_filesystem({"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": endpoint})


@pytest.mark.parametrize(
    "endpoint", ["https://minio.internal:9000", "http://localhost:9000", "http://[::1]:9000"]
)
def test_https_anywhere_and_http_on_loopback_are_accepted(endpoint: str) -> None:
    assert isinstance(
        s3_filesystem({"AWS_REGION": "eu-central-1", "AWS_ENDPOINT_URL": endpoint}), pafs.S3FileSystem
    )


def test_lake_resource_reads_an_s3_uri_and_keeps_raw_files_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in LOOPBACK.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ENERGY_ASSETS_LAKE", "s3://energy-lake/prod")
    lake = LakeResource(data_home=str(tmp_path))
    assert lake.location() == "s3://energy-lake/prod" and lake.on_object_storage()
    assert lake.store().root == "energy-lake/prod"
    assert lake.raw_dir() == tmp_path / "raw"
    assert lake.rejected_dir() == tmp_path / "rejected"
    assert lake.root() == tmp_path / "lake"


def test_lake_resource_with_a_folder_is_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENERGY_ASSETS_LAKE", raising=False)
    lake = LakeResource(path=str(tmp_path / "lake"))
    assert lake.location() == str(tmp_path / "lake") and not lake.on_object_storage()
    assert lake.store().is_local and lake.store().root == str((tmp_path / "lake").resolve())
    assert lake.raw_dir() == tmp_path / "raw"
    assert LakeResource(data_home=str(tmp_path)).root() == tmp_path / "lake"
