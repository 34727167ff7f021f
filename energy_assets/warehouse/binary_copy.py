"""Binary COPY of an Arrow table into PostgreSQL: pgpq encodes, psycopg 3 streams.

The table must already be conformed (`conform.conform_table`) to the target's column types. Blocks
are encoded by `pgpq.ArrowToPostgresBinaryEncoder` in a helper thread while the connection sends
the previous block, so encoding and the server's work overlap. jsonb columns use pgpq's jsonb
output (version byte + JSON text); everything else uses pgpq's inferred encoder.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping, Sequence

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
    builders = {}
    for f in table_schema:
        pg_type = pg_types.get(f.name)
        if pg_type is not None and pg_type.base == "jsonb":
            builders[f.name] = encoders.StringEncoderBuilder.new_with_output(f, schema.Jsonb())
        else:
            builders[f.name] = pgpq.ArrowToPostgresBinaryEncoder.infer_encoder(f)
    return pgpq.ArrowToPostgresBinaryEncoder.new_with_encoders(table_schema, builders)


def _blocks(table: pa.Table, pg_types: Mapping[str, PgType]) -> Iterator[bytes]:
    encoder = build_encoder(table.schema, pg_types)
    yield encoder.write_header()
    for batch in table.to_batches(max_chunksize=BATCH_ROWS):
        yield encoder.write_batch(batch)
    yield encoder.finish()


def _encoded_in_background(table: pa.Table, pg_types: Mapping[str, PgType]) -> Iterator[bytes]:
    """The same blocks as `_blocks`, encoded ahead in a thread (bounded queue)."""
    blocks: queue.Queue = queue.Queue(maxsize=_QUEUE_BLOCKS)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for block in _blocks(table, pg_types):
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
    table: pa.Table,
    pg_types: Mapping[str, PgType],
    columns: Sequence[str] | None = None,
) -> int:
    """COPY every row of `table` into `target` (its columns named like the table's); returns the row count."""
    names = list(columns or table.column_names)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(target, column_list(names))
    blocks = (
        _encoded_in_background(table, pg_types) if table.num_rows > BATCH_ROWS else _blocks(table, pg_types)
    )
    with cur.copy(statement) as copy:
        for block in blocks:
            copy.write(block)
    return table.num_rows
