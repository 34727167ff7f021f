"""Binary COPY of an Arrow table into PostgreSQL: pgpq encodes, psycopg 3 streams.

The table must already be conformed (`conform.conform_table`) to the target's column types. Blocks
are encoded by `pgpq.ArrowToPostgresBinaryEncoder` in a helper thread while the connection sends
the previous block, so encoding and the server's work overlap. jsonb columns use pgpq's jsonb
output (version byte + JSON text); everything else uses pgpq's inferred encoder.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pgpq
import psycopg
import pyarrow as pa
from pgpq import encoders, schema
from psycopg import sql

from energy_assets.warehouse.identifiers import column_list
from energy_assets.warehouse.pg_types import PgType

BATCH_ROWS = 131_072
_QUEUE_BLOCKS = 4


def build_encoder(
    table_schema: pa.Schema, pg_types: Mapping[str, PgType]
) -> pgpq.ArrowToPostgresBinaryEncoder:
    builders: dict[str, Any] = {}
    for f in table_schema:
        pg_type = pg_types.get(f.name)
        if pg_type is not None and pg_type.base == "jsonb":
            builders[f.name] = encoders.StringEncoderBuilder.new_with_output(f, schema.Jsonb())
        else:
            builders[f.name] = pgpq.ArrowToPostgresBinaryEncoder.infer_encoder(f)
    return pgpq.ArrowToPostgresBinaryEncoder.new_with_encoders(table_schema, builders)


def _blocks(tables: Iterable[pa.Table], pg_types: Mapping[str, PgType]) -> Iterator[bytes]:
    encoder = None
    for table in tables:
        if encoder is None:
            encoder = build_encoder(table.schema, pg_types)
            yield encoder.write_header()
        for batch in table.to_batches(max_chunksize=BATCH_ROWS):
            yield encoder.write_batch(batch)
    if encoder is not None:
        yield encoder.finish()


def _encoded_in_background(tables: Iterable[pa.Table], pg_types: Mapping[str, PgType]) -> Iterator[bytes]:
    """The same blocks as `_blocks`, produced ahead in a thread (bounded queue): producing the
    tables (reading, conforming) and encoding them overlaps with the server's work on the last block."""
    blocks: queue.Queue = queue.Queue(maxsize=_QUEUE_BLOCKS)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for block in _blocks(tables, pg_types):
                while not stop.is_set():
                    try:
                        blocks.put(block, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            blocks.put(done)
        except BaseException as exc:  # handed to the consumer, re-raised there
            blocks.put(exc)

    worker = threading.Thread(target=produce, name="pgpq-encoder", daemon=True)
    worker.start()
    try:
        while True:
            item = blocks.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def copy_arrow(
    cur: psycopg.Cursor,
    target: sql.Composable,
    table: pa.Table | Iterable[pa.Table],
    pg_types: Mapping[str, PgType],
    columns: Sequence[str] | None = None,
) -> int:
    """COPY rows into `target`; returns the row count.

    `table` is a conformed Arrow table, or an iterable of conformed tables with the same columns
    (produced lazily in the encoder thread, e.g. read from Parquet batch by batch); then `columns`
    names them. The target's columns are named like the table's.
    """
    if isinstance(table, pa.Table):
        names = list(columns or table.column_names)
        tables: Iterable[pa.Table] = [table]
        background = table.num_rows > BATCH_ROWS
    else:
        if columns is None:
            raise ValueError("copy_arrow needs the column names when given an iterable of tables")
        names, tables, background = list(columns), table, True
    rows = 0

    def counted() -> Iterator[pa.Table]:
        nonlocal rows
        for piece in tables:
            rows += piece.num_rows
            yield piece

    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(target, column_list(names))
    blocks = _encoded_in_background(counted(), pg_types) if background else _blocks(counted(), pg_types)
    with cur.copy(statement) as copy:
        for block in blocks:
            copy.write(block)
    return rows
