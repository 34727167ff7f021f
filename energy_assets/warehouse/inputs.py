"""What a caller hands the warehouse (an Arrow table or a Parquet file), turned into an Arrow table.

Reading errors name the file: a file that is not Parquet, is truncated or unreadable raises
`NotParquetError` instead of a bare pyarrow exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from energy_assets.errors import DataValidationError

PARQUET_MAGIC = b"PAR1"


class NotParquetError(DataValidationError):
    """A file handed to the loader is not a readable Parquet file."""


@dataclass(frozen=True)
class LoadInput:
    """Rows to load and where they came from (for error messages)."""

    table: pa.Table
    source: str


def read_parquet(path: str | Path) -> pa.Table:
    """Read a whole Parquet file; anything that is not Parquet raises `NotParquetError` naming the file."""
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
            "Convert it first (CSV/JSON: see schema_inference.read_csv_whole / read_json_whole)."
        )
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise NotParquetError(f"{path}: a damaged Parquet file ({exc}); nothing was loaded.") from exc


def as_input(data: pa.Table | str | Path, source: str | None = None) -> LoadInput:
    """An Arrow table as is, or a Parquet file read whole."""
    if isinstance(data, pa.Table):
        return LoadInput(data, source or "Arrow table")
    if isinstance(data, (str, Path)):
        return LoadInput(read_parquet(data), source or str(data))
    if isinstance(data, pa.RecordBatch):
        return LoadInput(pa.Table.from_batches([data]), source or "Arrow record batch")
    raise TypeError(f"Cannot load {type(data).__name__}; pass a pyarrow.Table or a Parquet file path.")
