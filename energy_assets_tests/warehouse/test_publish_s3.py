"""The publish path with the lake on S3: a moto server on loopback, PostgreSQL from the session's cluster.

The same small table as `test_publish.py` (`site`, `interval_start`, `series`, `value_mw`, partitioned by
site and day) goes through `Publisher` with a `ParquetStore` on `pyarrow.fs.S3FileSystem`. The bucket has
versioning on, so "nothing was written" is checked by counting object versions, not by timestamps.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from energy_assets.postgres.connection import PostgresSettings
from energy_assets.warehouse.audit import AuditFailedError
from energy_assets.warehouse.lake_comparison import compare_lake_with_postgres
from energy_assets.warehouse.parquet_store import ParquetStore
from energy_assets.warehouse.publish import Candidate, Publisher, read_published
from energy_assets.warehouse.table_spec import TableSpec
from energy_assets_tests.warehouse.test_publish import day_candidate, make_spec, pg_values

moto_server = pytest.importorskip(
    "moto.server",
    reason="moto[server] is not installed (pip install 'moto[server]'); the S3 lake is untested",
)
boto3 = pytest.importorskip("boto3", reason="boto3 (installed with moto) is missing")

BUCKET = "energy-lake"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, with one versioned bucket."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    previous = os.environ.get("AWS_EC2_METADATA_DISABLED")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # never ask a metadata service for credentials
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"{host}:{port}"
    client = s3_client(endpoint)
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    try:
        yield endpoint
    finally:
        server.stop()
        if previous is None:
            os.environ.pop("AWS_EC2_METADATA_DISABLED", None)
        else:
            os.environ["AWS_EC2_METADATA_DISABLED"] = previous


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"http://{endpoint}",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )


@pytest.fixture
def prefix() -> str:
    return f"lake-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def store(s3_endpoint: str, prefix: str) -> ParquetStore:
    filesystem = pafs.S3FileSystem(
        endpoint_override=s3_endpoint,
        scheme="http",
        access_key="test",
        secret_key="test",
        region="us-east-1",
    )
    return ParquetStore(f"{BUCKET}/{prefix}", filesystem=filesystem)


@pytest.fixture
def publisher(pg_settings: PostgresSettings, store: ParquetStore, tmp_path: Path) -> Publisher:
    return Publisher(pg_settings, store, tmp_path / "rejected")


@pytest.fixture
def spec(warehouse_schema: str) -> TableSpec:
    return make_spec(warehouse_schema)


def objects(s3_endpoint: str, prefix: str) -> dict[str, list[str]]:
    """Every key under the prefix with its version ids, newest first (delete markers excluded)."""
    found: dict[str, list[str]] = {}
    listing = s3_client(s3_endpoint).list_object_versions(Bucket=BUCKET, Prefix=f"{prefix}/")
    for version in listing.get("Versions", []):
        found.setdefault(version["Key"][len(prefix) + 1 :], []).append(version["VersionId"])
    return found


def live_objects(s3_endpoint: str, prefix: str) -> dict[str, bytes]:
    """The current objects under the prefix and their bytes."""
    client = s3_client(s3_endpoint)
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
    return {
        item["Key"][len(prefix) + 1 :]: client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        for item in listing.get("Contents", [])
        if not item["Key"].endswith("/")  # pyarrow's directory markers
    }


def test_publish_to_s3_then_unchanged_rerun_writes_nothing(publisher, spec, pg_settings, s3_endpoint, prefix):
    candidates = [day_candidate(0, [1.0, 2.0]), day_candidate(1, [3.0, 4.0])]
    first = publisher.publish(spec, candidates)
    assert [p.status for p in first.partitions] == ["new", "new"]
    assert first.load is not None and first.load.inserted == 4
    assert first.lake_path == f"{BUCKET}/{prefix}/{spec.qualified_name}"
    dataset = spec.qualified_name
    assert sorted(live_objects(s3_endpoint, prefix)) == [
        f"{dataset}/_inferred_schema.json",
        f"{dataset}/site=a/date=2024-03-01/part-0.parquet",
        f"{dataset}/site=a/date=2024-03-02/part-0.parquet",
    ]
    part = f"{dataset}/site=a/date=2024-03-01/part-0.parquet"
    assert len(objects(s3_endpoint, prefix)[part]) == 1
    assert publisher.store.list_partitions(dataset) == [
        {"site": "a", "date": "2024-03-01"},
        {"site": "a", "date": "2024-03-02"},
    ]

    again = publisher.publish(spec, candidates)
    assert [p.status for p in again.partitions] == ["unchanged", "unchanged"]
    assert again.load is None
    assert len(objects(s3_endpoint, prefix)[part]) == 1, "an unchanged partition was uploaded again"

    changed = publisher.publish(spec, [day_candidate(1, [3.0, 5.0])])
    assert [p.status for p in changed.partitions] == ["changed"]
    assert changed.audit.outcome("no_shrinking_partition:values").passed  # counted in the S3 object
    assert (changed.load.updated, changed.load.unchanged) == (1, 1)
    assert [row[3] for row in pg_values(pg_settings, spec)] == [1.0, 2.0, 3.0, 5.0]
    published = read_published(publisher.store, spec, [c.partition for c in candidates])
    assert published.column("value_mw").to_pylist() == [1.0, 2.0, 3.0, 5.0]
    comparison = compare_lake_with_postgres(
        pg_settings, publisher.store, spec, [(c.partition, c.scope) for c in candidates]
    )
    assert comparison.passed, comparison.summary()
    assert [p.lake_rows for p in comparison.partitions] == [2, 2]
    assert not [key for key in live_objects(s3_endpoint, prefix) if ".staged-" in key or key.endswith(".tmp")]


def test_refused_audit_leaves_s3_as_it_was(publisher, spec, pg_settings, s3_endpoint, prefix):
    good = day_candidate(0, [1.0, 2.0])
    publisher.publish(spec, [good])
    before_lake = live_objects(s3_endpoint, prefix)
    before_pg = pg_values(pg_settings, spec)
    with pytest.raises(AuditFailedError) as raised:
        publisher.publish(spec, [day_candidate(0, [1.0, float("nan")])])
    assert "finite:value_mw" in str(raised.value)
    assert live_objects(s3_endpoint, prefix) == before_lake
    assert pg_values(pg_settings, spec) == before_pg
    folder = Path(raised.value.rejected_at)
    report = json.loads((folder / "report.json").read_text())
    assert "finite:value_mw" in [o["rule"] for o in report["outcomes"] if not o["passed"]]
    refused = pq.read_table(folder / "site=a__date=2024-03-01.parquet")
    assert refused.num_rows == 2
    assert publisher.store.staged_tags(spec.qualified_name, good.partition) == []


def test_a_refetch_with_a_null_is_refused_against_the_s3_object(
    publisher, spec, pg_settings, s3_endpoint, prefix
):
    good = day_candidate(0, [1.0, 2.0])
    publisher.publish(spec, [good])
    before_lake = live_objects(s3_endpoint, prefix)
    before_pg = pg_values(pg_settings, spec)
    with pytest.raises(AuditFailedError) as raised:
        publisher.publish(spec, [day_candidate(0, [1.0, None])])
    [failure] = raised.value.report.failures
    assert [(row["series"], row["lost_values"]) for row in failure.sample] == [("site=a/series=x", 1)]
    assert live_objects(s3_endpoint, prefix) == before_lake
    assert pg_values(pg_settings, spec) == before_pg


def test_recovery_promotes_a_committed_staged_object_and_drops_the_rest(publisher, spec, pg_settings):
    """A kill between the copy and the delete of a promote (or before the promote) is finished next run."""
    good = day_candidate(0, [1.0, 2.0])
    first = publisher.publish(spec, [good])
    store, dataset = publisher.store, spec.qualified_name
    committed = str(first.load_id)
    final = store.partition_path(dataset, good.partition)
    body = store.filesystem.open_input_stream(final).read()
    with store.filesystem.open_output_stream(store.staged_path(dataset, good.partition, committed)) as out:
        out.write(body)
    with store.filesystem.open_output_stream(store.staged_path(dataset, good.partition, "stale")) as out:
        out.write(b"not parquet")
    orphan = f"{store.partition_dir(dataset, good.partition)}/.part-0.parquet.0123abcd.tmp"
    with store.filesystem.open_output_stream(orphan) as out:
        out.write(b"partial")
    assert store.staged_tags(dataset, good.partition) == sorted([committed, "stale"])

    again = publisher.publish(spec, [good])
    assert again.repaired == ["site=a/date=2024-03-01"]
    assert [p.status for p in again.partitions] == ["unchanged"]
    assert store.staged_tags(dataset, good.partition) == []
    assert store.filesystem.get_file_info(orphan).type == pafs.FileType.NotFound
    assert store.read_partition(dataset, good.partition).column("value_mw").to_pylist() == [1.0, 2.0]
    comparison = compare_lake_with_postgres(pg_settings, store, spec, [(good.partition, good.scope)])
    assert comparison.passed, comparison.summary()


def test_a_large_candidate_file_is_streamed_to_s3(publisher, spec, pg_settings, tmp_path):
    """A candidate given as a local Parquet file (how big partitions arrive) is staged batch by batch."""
    in_memory = day_candidate(0, [1.0, 2.0, 3.0])
    source = tmp_path / "candidate.parquet"
    pq.write_table(in_memory.data, source, row_group_size=1)
    as_file = Candidate(partition=in_memory.partition, scope=in_memory.scope, data=source)
    result = publisher.publish(spec, [as_file])
    assert [p.status for p in result.partitions] == ["new"]
    lake = publisher.store.read_partition(spec.qualified_name, in_memory.partition)
    assert lake.column_names == ["interval_start", "series", "value_mw"]  # `site` is in the path
    assert lake.column("value_mw").to_pylist() == [1.0, 2.0, 3.0]
    assert [row[3] for row in pg_values(pg_settings, spec)] == [1.0, 2.0, 3.0]
