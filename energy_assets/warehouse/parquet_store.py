"""The Parquet lake: hive-partitioned datasets written atomically, one file per partition.

Layout: `<root>/<dataset>/<key>=<value>[/<key2>=<value2>...]/part-0.parquet` (zstd). Writing a
partition writes a hidden temporary file next to the target, fsyncs it, and renames it over
`part-0.parquet`, so readers see the old partition or the new one, never half of one, and no other
partition is touched. Dataset names, partition keys and values are validated (no `..`, `/`, empty
or exotic characters) so a value can never point outside its dataset folder; values are therefore
stored verbatim, with no URL encoding to get wrong.

Each dataset may carry its inferred-schema artefact, `<root>/<dataset>/_inferred_schema.json`.

All file access goes through a `pyarrow.fs.FileSystem` (local by default). On object storage (S3, through
`pyarrow.fs.S3FileSystem`) an object is written whole by one upload, so readers still never see half a
file, but a "rename" is a copy and a delete: see `promote_staged`. What does not belong here: schema
inference, database loading, Dagster.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from energy_assets.errors import DataValidationError
from energy_assets.files import atomic_file, fsync_directory, sync_filesystem
from energy_assets.warehouse.schema_inference import InferredSchema

PART_FILE = "part-0.parquet"
SCHEMA_FILE = "_inferred_schema.json"
COMPRESSION = "zstd"
# zstd sets up a context per column chunk (about 0.03 ms each): on a partition of a few hundred rows that
# costs three times the whole write and saves almost nothing (a mart's day: 6.5 kB with zstd, 6.6 kB with
# snappy), and a year's backfill writes thousands of such files. Smaller partitions use snappy.
SMALL_PARTITION_ROWS = 1000
SMALL_PARTITION_COMPRESSION = "snappy"


def compression_for(table: pa.Table) -> str:
    """The Parquet codec of a partition file: zstd, or snappy below `SMALL_PARTITION_ROWS` rows."""
    return COMPRESSION if table.num_rows >= SMALL_PARTITION_ROWS else SMALL_PARTITION_COMPRESSION


_DATASET_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VALUE_RE = re.compile(r"[A-Za-z0-9_.,:+@~ -]+")


class PartitionPathError(DataValidationError):
    """A dataset name or partition key/value is empty, unsafe or would leave the dataset folder."""


def _check_dataset(dataset: str) -> str:
    if not isinstance(dataset, str) or not _DATASET_RE.fullmatch(dataset) or ".." in dataset:
        raise PartitionPathError(
            f"Dataset name {dataset!r} is not allowed: use letters, digits, '_', '-' and '.', "
            "no '/', no '..', not empty, not starting with '.' or '-'."
        )
    return dataset


def _check_partition(dataset: str, partition: Mapping[str, str]) -> list[tuple[str, str]]:
    if not partition:
        raise PartitionPathError(f"Dataset {dataset!r}: a partition needs at least one key=value pair.")
    pairs = []
    for key, value in partition.items():
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            raise PartitionPathError(
                f"Dataset {dataset!r}: partition key {key!r} is not allowed; use letters, digits and '_'."
            )
        text = str(value)
        if not _VALUE_RE.fullmatch(text) or ".." in text or text.strip() == "":
            raise PartitionPathError(
                f"Dataset {dataset!r}: partition value {key}={text!r} is not allowed; it must be non-empty, "
                "without '/', '\\', '..', '=', '%' or control characters."
            )
        pairs.append((key, text))
    return pairs


class ParquetStore:
    """Hive-partitioned Parquet datasets under one root, on any pyarrow filesystem."""

    def __init__(self, root: str | Path, filesystem: pafs.FileSystem | None = None) -> None:
        self.filesystem = filesystem or pafs.LocalFileSystem()
        self.is_local = isinstance(self.filesystem, pafs.LocalFileSystem)
        root_text = str(Path(root).expanduser().resolve()) if self.is_local else str(root).rstrip("/")
        self.root = root_text

    # ------------------------------------------------------------------ paths
    def dataset_path(self, dataset: str) -> str:
        return f"{self.root}/{_check_dataset(dataset)}"

    def partition_dir(self, dataset: str, partition: Mapping[str, str]) -> str:
        pairs = _check_partition(dataset, partition)
        return "/".join([self.dataset_path(dataset), *(f"{k}={v}" for k, v in pairs)])

    def partition_path(self, dataset: str, partition: Mapping[str, str]) -> str:
        """Where the partition's file lives (whether or not it exists)."""
        return f"{self.partition_dir(dataset, partition)}/{PART_FILE}"

    def duckdb_glob(self, dataset: str) -> str:
        """A glob for DuckDB's `read_parquet(glob, hive_partitioning=true)` (local filesystems)."""
        return f"{self.dataset_path(dataset)}/**/*.parquet"

    # ------------------------------------------------------------------ writing
    def write_partition(self, dataset: str, partition: Mapping[str, str], table: pa.Table) -> str:
        """Write (or atomically replace) one partition; returns the file path.

        Columns named like a partition key are dropped from the file (the folder carries them) after
        checking that every value equals the partition value.
        """
        pairs = _check_partition(dataset, partition)
        self._check_key_layout(dataset, pairs)
        table = self._without_partition_columns(dataset, pairs, table)
        directory = self.partition_dir(dataset, partition)
        return self._write_atomic(
            directory, PART_FILE, lambda sink: pq.write_table(table, sink, compression=compression_for(table))
        )

    def write_inferred_schema(self, dataset: str, schema: InferredSchema) -> str:
        """Store the dataset's inferred-schema artefact (`<dataset>/_inferred_schema.json`) atomically.

        Dataset readers skip it: pyarrow ignores `_`-prefixed files and DuckDB globs `*.parquet`.
        """
        text = schema.to_json().encode("utf-8")
        return self._write_atomic(
            self.dataset_path(_check_dataset(dataset)), SCHEMA_FILE, lambda sink: sink.write(text)
        )

    def read_inferred_schema(self, dataset: str) -> InferredSchema | None:
        """The stored inferred schema of a dataset, or None if none was written."""
        path = f"{self.dataset_path(_check_dataset(dataset))}/{SCHEMA_FILE}"
        try:
            with self.filesystem.open_input_stream(path) as stream:
                return InferredSchema.from_json(stream.read().decode("utf-8"))
        except FileNotFoundError:
            return None

    def _write_atomic(self, directory: str, name: str, write: Callable[[Any], Any]) -> str:
        """Write `directory/name` so that readers see the old file or the new one, never half of it:
        locally through `atomic_file` (temporary file, fsync, rename); on object storage, an upload to a
        temporary key moved into place."""
        final = f"{directory}/{name}"
        if self.is_local:
            with atomic_file(final) as handle:
                write(handle)
            return final
        self.filesystem.create_dir(directory, recursive=True)
        temporary = f"{directory}/.{name}.{uuid.uuid4().hex}.tmp"
        try:
            with self.filesystem.open_output_stream(temporary) as stream:
                write(stream)
            self.filesystem.move(temporary, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError, OSError):
                self.filesystem.delete_file(temporary)
            raise
        return final

    # ------------------------------------------------------------------ staged writes (publish path)
    def staged_path(self, dataset: str, partition: Mapping[str, str], tag: str) -> str:
        """A hidden file beside the partition's file, invisible to readers until promoted."""
        return f"{self.partition_dir(dataset, partition)}/.{PART_FILE}.staged-{tag}"

    def write_staged_partition(
        self,
        dataset: str,
        partition: Mapping[str, str],
        table: pa.Table,
        tag: str,
        *,
        check_layout: bool = True,
        durable: bool = True,
    ) -> str:
        """Write the partition's next version as a hidden staged file, for `promote_staged`.

        `durable=False` skips the file's fsync (the caller syncs a whole batch with `sync`);
        `check_layout=False` when the caller checked the dataset's layout once for the batch.
        """
        pairs = _check_partition(dataset, partition)
        if check_layout:
            self._check_key_layout(dataset, pairs)
        table = self._without_partition_columns(dataset, pairs, table)
        path = self.staged_path(dataset, partition, tag)
        with self._open_new_file(path, durable=durable) as sink:
            pq.write_table(table, sink, compression=compression_for(table))
        return path

    def check_layout(self, dataset: str, partition: Mapping[str, str]) -> None:
        """Refuse a partition whose keys differ from the dataset's folder layout (once per batch of writes)."""
        self._check_key_layout(dataset, _check_partition(dataset, partition))

    def sync(self) -> None:
        """Make every write so far durable (one `syncfs` for a local lake; object storage needs none)."""
        if self.is_local:
            sync_filesystem(self.root)

    def stage_partition_file(
        self, dataset: str, partition: Mapping[str, str], source: str | Path, tag: str
    ) -> str:
        """Stage a Parquet file written elsewhere, batch by batch (bounded memory), as the next version.

        `source` is a local file, whatever filesystem the lake is on.
        """
        pairs = _check_partition(dataset, partition)
        self._check_key_layout(dataset, pairs)
        path = self.staged_path(dataset, partition, tag)
        reader = pq.ParquetFile(source)
        drop = [key for key, _ in pairs if key in reader.schema_arrow.names]
        schema = reader.schema_arrow
        for name in drop:
            schema = schema.remove(schema.get_field_index(name))
        with self._open_new_file(path) as sink:
            with pq.ParquetWriter(sink, schema, compression=COMPRESSION) as writer:
                for batch in reader.iter_batches():
                    table = pa.Table.from_batches([batch])
                    writer.write_table(self._without_partition_columns(dataset, pairs, table))
        return path

    def staged_tags(self, dataset: str, partition: Mapping[str, str]) -> list[str]:
        """Tags of the staged files waiting beside a partition (left by an interrupted publish)."""
        prefix = f".{PART_FILE}.staged-"
        names = self._names_in(self.partition_dir(dataset, partition))
        return sorted(name[len(prefix) :] for name in names if name.startswith(prefix))

    def promote_staged(
        self, dataset: str, partition: Mapping[str, str], tag: str, *, durable: bool = True
    ) -> str:
        """Move a staged file into place; returns the partition path.

        Locally an atomic rename (directory fsynced). On object storage (S3) there is no rename:
        `move` copies the staged object over the partition's object, then deletes the staged one. A
        reader of the partition still gets the old or the new object (an object is replaced whole), but
        the two steps are not one: a kill between them leaves the staged copy beside the promoted file,
        which the publish path's recovery promotes again (same bytes) or deletes.
        """
        final = self.partition_path(dataset, partition)
        staged = self.staged_path(dataset, partition, tag)
        if self.is_local:
            # The staged bytes were synced when staged (or are synced with the batch by the caller).
            os.replace(staged, final)
            if durable:
                fsync_directory(os.path.dirname(final))
        else:
            self.filesystem.move(staged, final)
        return final

    def discard_staged(self, dataset: str, partition: Mapping[str, str], tag: str) -> None:
        path = self.staged_path(dataset, partition, tag)
        try:
            if self.is_local:
                os.remove(path)
            else:
                self.filesystem.delete_file(path)
        except FileNotFoundError:
            pass

    def remove_orphan_temporaries(self, dataset: str, partition: Mapping[str, str]) -> int:
        """Delete `*.tmp` files a killed write left beside a partition; returns how many."""
        directory = self.partition_dir(dataset, partition)
        removed = 0
        for name in self._names_in(directory):
            if name.startswith(f".{PART_FILE}.") and name.endswith(".tmp"):
                if self.is_local:
                    os.remove(os.path.join(directory, name))
                else:
                    self.filesystem.delete_file(f"{directory}/{name}")
                removed += 1
        return removed

    def file_sha256(self, path: str) -> str:
        """sha256 (hex) of a file in the lake, read in 1 MiB chunks."""
        digest = hashlib.sha256()
        with self.filesystem.open_input_stream(path) as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    def _open_new_file(self, path: str, *, durable: bool = True) -> Any:
        """A writable stream for a new file: locally fsynced on close (unless not `durable`); on object
        storage, uploaded on close."""
        if self.is_local:
            return _fsynced_file(path, durable=durable)
        return self.filesystem.open_output_stream(path)

    def _names_in(self, directory: str) -> list[str]:
        """Names of the files in one folder of the lake (none if it does not exist)."""
        if self.is_local:
            try:
                return os.listdir(directory)
            except FileNotFoundError:
                return []
        infos = self.filesystem.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
        return [info.base_name for info in infos if info.type == pafs.FileType.File]

    def delete_partition(self, dataset: str, partition: Mapping[str, str]) -> bool:
        """Remove one partition's folder; returns False if it did not exist."""
        directory = self.partition_dir(dataset, partition)
        if self.filesystem.get_file_info(directory).type == pafs.FileType.NotFound:
            return False
        self.filesystem.delete_dir(directory)
        return True

    # ------------------------------------------------------------------ reading
    def has_partition(self, dataset: str, partition: Mapping[str, str]) -> bool:
        info = self.filesystem.get_file_info(self.partition_path(dataset, partition))
        return info.type == pafs.FileType.File

    def read_partition(self, dataset: str, partition: Mapping[str, str]) -> pa.Table:
        """The partition's rows as written (without the partition key columns)."""
        path = self.partition_path(dataset, partition)
        if not self.has_partition(dataset, partition):
            raise FileNotFoundError(
                f"Dataset {dataset!r} has no partition {dict(partition)} (looked for {path})."
            )
        return pq.read_table(path, filesystem=self.filesystem)

    def read_partitions(self, dataset: str, partitions: Sequence[Mapping[str, str]]) -> pa.Table:
        """The partitions that exist, in the given order, read at once, with their keys as text columns
        (a year of daily partitions is one dataset scan, not 366 file reads)."""
        present = [partition for partition in partitions if self.has_partition(dataset, partition)]
        if not present:
            return pa.table({})
        keys = list(present[0])
        partitioning = ds.partitioning(pa.schema([(key, pa.string()) for key in keys]), flavor="hive")
        scanned = ds.dataset(
            [self.partition_path(dataset, partition) for partition in present],
            format="parquet",
            filesystem=self.filesystem,
            partitioning=partitioning,
            partition_base_dir=self.dataset_path(dataset),
        )
        return scanned.to_table()

    def list_partitions(self, dataset: str) -> list[dict[str, str]]:
        """Every partition of a dataset, as key -> value dicts, sorted by path."""
        base = self.dataset_path(dataset)
        if self.filesystem.get_file_info(base).type == pafs.FileType.NotFound:
            return []
        selector = pafs.FileSelector(base, recursive=True)
        found = []
        for info in self.filesystem.get_file_info(selector):
            if info.type == pafs.FileType.File and info.base_name == PART_FILE:
                relative = info.path[len(base) + 1 : -len(PART_FILE) - 1]
                found.append(dict(segment.split("=", 1) for segment in relative.split("/")))
        return sorted(found, key=lambda p: list(p.items()))

    def dataset(self, dataset: str, schema: pa.Schema | None = None) -> ds.Dataset:
        """A pyarrow dataset over all partitions; partition keys become (inferred-type) columns."""
        base = self.dataset_path(dataset)
        if self.filesystem.get_file_info(base).type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"Dataset {dataset!r} does not exist under {self.root}.")
        return ds.dataset(
            base, filesystem=self.filesystem, format="parquet", partitioning="hive", schema=schema
        )

    def read_dataset(self, dataset: str, filter: pc.Expression | None = None) -> pa.Table:
        return self.dataset(dataset).to_table(filter=filter)

    def duckdb_relation(self, con: Any, dataset: str) -> Any:
        """A DuckDB relation over the dataset with hive partition columns (local filesystems only)."""
        if not self.is_local:
            raise NotImplementedError(
                "duckdb_relation reads local files; register the pyarrow dataset instead."
            )
        return con.read_parquet(self.duckdb_glob(dataset), hive_partitioning=True)

    # ------------------------------------------------------------------ helpers
    def _check_key_layout(self, dataset: str, pairs: list[tuple[str, str]]) -> None:
        """Refuse a partition whose keys differ from the dataset's existing folder layout."""
        directory = self.dataset_path(dataset)
        for depth in range(len(pairs) + 1):
            children = self.filesystem.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
            keys = {
                child.base_name.split("=", 1)[0]
                for child in children
                if child.type == pafs.FileType.Directory
                and "=" in child.base_name
                and not child.base_name.startswith((".", "_"))
            }
            has_file = any(c.type == pafs.FileType.File and c.base_name == PART_FILE for c in children)
            wanted = {pairs[depth][0]} if depth < len(pairs) else set()
            if (keys and keys != wanted) or (has_file and depth < len(pairs)):
                layout = sorted(keys) if keys else "a data file"
                raise PartitionPathError(
                    f"Dataset {dataset!r} holds {layout} at partition level {depth + 1}, but this write uses "
                    f"keys {[k for k, _ in pairs]}; write partitions with the same keys in the same order."
                )
            if depth == len(pairs) or not keys:
                return
            key, value = pairs[depth]
            directory = f"{directory}/{key}={value}"

    @staticmethod
    def _without_partition_columns(dataset: str, pairs: list[tuple[str, str]], table: pa.Table) -> pa.Table:
        for key, value in pairs:
            if key not in table.column_names:
                continue
            as_text = pc.cast(table[key], pa.string())
            mismatched = pc.invert(pc.fill_null(pc.equal(as_text, value), False))
            if table.num_rows and pc.any(mismatched).as_py():
                index = pc.index(mismatched, True).as_py()
                raise DataValidationError(
                    f"Dataset {dataset!r}, partition {key}={value!r}: column {key!r} holds "
                    f"{table[key][index].as_py()!r} at row {index}; every row must belong to the partition."
                )
            table = table.drop_columns([key])
        return table


@contextmanager
def _fsynced_file(path: str, *, durable: bool = True) -> Iterator[BinaryIO]:
    """A new local file (parent folders created), flushed and fsynced before it is closed if `durable`."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        yield handle
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
