"""What a caller hands the warehouse (an Arrow table or a Parquet file), as a `LoadInput`.

A Parquet file is opened lazily: its schema and row count come from the footer, single columns are
read on demand (for checks), and rows can be streamed batch by batch into a COPY, so a load can start
before the whole file is decoded. Reading errors name the file: a file that is not Parquet, is
truncated or unreadable raises `NotParquetError` instead of a bare pyarrow exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from energy_assets.errors import DataValidationError

PARQUET_MAGIC = b"PAR1"
T = TypeVar("T")


class NotParquetError(DataValidationError):
    """A file handed to the loader is not a readable Parquet file."""


def open_parquet(path: str | Path) -> pq.ParquetFile:
    """Open a Parquet file (footer only); anything that is not Parquet raises `NotParquetError`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(4)
            handle.seek(max(size - 4, 0))
            tail = handle.read(4)
    except FileNotFoundError as exc:
        raise NotParquetError(f"{path}: no such file; nothing was loaded.") from exc
    except OSError as exc:
        raise NotParquetError(f"{path}: cannot be read ({exc}); nothing was loaded.") from exc
    if size < 12 or head != PARQUET_MAGIC or tail != PARQUET_MAGIC:
        raise NotParquetError(
            f"{path}: not a Parquet file (it does not start and end with 'PAR1'); nothing was loaded. "
            "Convert it to Parquet first (a CSV file: declare it as a file source, docs/file_sources.md)."
        )
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise NotParquetError(f"{path}: a damaged Parquet file ({exc}); nothing was loaded.") from exc


def read_parquet(path: str | Path) -> pa.Table:
    """Read a whole Parquet file; anything that is not Parquet raises `NotParquetError` naming the file."""
    return LoadInput.from_parquet(path).table


class LoadInput:
    """Rows to load and where they came from (for error messages)."""

    def __init__(
        self,
        source: str,
        table: pa.Table | None = None,
        parquet: pq.ParquetFile | None = None,
        path: str | Path | None = None,
    ) -> None:
        if (table is None) == (parquet is None):
            raise ValueError("LoadInput needs exactly one of table and parquet")
        self.source = source
        self._table = table
        self._parquet = parquet
        self._path = path
        self._columns: dict[str, pa.ChunkedArray] = {}

    @classmethod
    def from_parquet(cls, path: str | Path) -> LoadInput:
        return cls(str(path), parquet=open_parquet(path), path=path)

    @property
    def schema(self) -> pa.Schema:
        return self._table.schema if self._table is not None else self._parquet.schema_arrow  # type: ignore[union-attr]

    @property
    def column_names(self) -> list[str]:
        return list(self.schema.names)

    @property
    def num_rows(self) -> int:
        return self._table.num_rows if self._table is not None else self._parquet.metadata.num_rows  # type: ignore[union-attr]

    @property
    def is_read(self) -> bool:
        return self._table is not None

    @property
    def table(self) -> pa.Table:
        """All rows (a Parquet file is read on first use)."""
        if self._table is None:
            self._table = self._reading(lambda: self._reader().read(use_threads=True))
        return self._table

    def column(self, name: str) -> pa.ChunkedArray:
        """One column (from a Parquet file, only that column is read)."""
        if self._table is not None:
            return self._table[name]
        if name not in self._columns:
            read = self._reading(lambda: self._reader().read(columns=[name], use_threads=True))
            self._columns[name] = read.column(0)
        return self._columns[name]

    __getitem__ = column

    def batches(self, rows: int) -> Iterator[pa.Table]:
        """The rows in order, about `rows` at a time (streamed from a Parquet file)."""
        if self._table is not None:
            for offset in range(0, self._table.num_rows, rows):
                yield self._table.slice(offset, rows)
            return
        stream = self._reader().iter_batches(batch_size=rows, use_threads=False)
        while True:
            batch = self._reading(lambda: next(stream, None))
            if batch is None:
                return
            yield pa.Table.from_batches([batch])

    def close(self) -> None:
        """Release the open Parquet file (its footer stays readable); nothing to do for an Arrow table."""
        if self._parquet is not None:
            self._parquet.close()

    def _reader(self) -> pq.ParquetFile:
        """A reader of its own for each read (the footer is not parsed again), so reads never share a position."""
        assert self._parquet is not None and self._path is not None
        return pq.ParquetFile(self._path, metadata=self._parquet.metadata)

    def _reading(self, read: Callable[[], T]) -> T:
        try:
            return read()
        except (pa.ArrowException, OSError) as exc:
            raise NotParquetError(
                f"{self.source}: a damaged Parquet file ({exc}); nothing was loaded."
            ) from exc


def as_input(data: pa.Table | str | Path | LoadInput, source: str | None = None) -> LoadInput:
    """An Arrow table as is, or a Parquet file opened lazily."""
    if isinstance(data, LoadInput):
        return data
    if isinstance(data, pa.Table):
        return LoadInput(source or "Arrow table", table=data)
    if isinstance(data, pa.RecordBatch):
        return LoadInput(source or "Arrow record batch", table=pa.Table.from_batches([data]))
    if isinstance(data, (str, Path)):
        return LoadInput.from_parquet(data)
    raise TypeError(f"Cannot load {type(data).__name__}; pass a pyarrow.Table or a Parquet file path.")
