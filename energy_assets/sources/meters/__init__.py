"""Meter files: NEM12 interval meter data dropped into an inbox folder. Pure domain code, no Dagster.

Modules, in the order a file flows through them:

- `settings`: environment variables (inbox folder, protected-identifier switch and key names, batch size).
- `inbox`: the file drop: candidate files, stability between two observations, sha256 identity, moves to
  `processed/` and `quarantine/` (never a delete, never an overwrite) and the JSON quarantine report.
- `nem12_records`: the typed NEM12 record model (100, 200, 300, 400, 500, 900) and the field rules.
- `nem12`: the streaming reader: file, zip or stream in, Arrow record batches of interval readings out.
- `identifiers`: protected identifiers: HMAC-SHA256 pseudonyms, Fernet/MultiFernet encryption and rotation.
- `ledger`: the durable record of every file content (loading, committed, processed, quarantined).
- `file_claims`: what the ledger says a run does with its file (shared with the file sources).
- `ingest`: one inbox file, from the ledger through parse, pseudonyms and publish to `processed/`.
- `tables`: the table schemas (columns, units, bounds, keys) of the raw tables and the mart.
- `rules`: NEM12-specific audit rules (interval grid, quality flags, units) for the publish path.
- `aggregates`: the `nmi_daily_consumption` mart in DuckDB SQL (`sql/*.sql`).
- `errors`: `Nem12Error` (file, line, record, reason), `Nem13NotSupportedError`, key and decryption errors.
- `sample/`: small synthetic NEM12 files for the offline demo.

Format: AEMO "Meter Data File Format Specification NEM12 & NEM13" (MDFF v2.6).
"""

from energy_assets.sources.meters.errors import (
    IdentifierKeyError,
    Nem12Error,
    Nem13NotSupportedError,
    NmiDecryptionError,
)
from energy_assets.sources.meters.nem12 import Nem12Reader, iter_records, read_nem12_batches, read_nem12_table

__all__ = [
    "IdentifierKeyError",
    "Nem12Error",
    "Nem12Reader",
    "Nem13NotSupportedError",
    "NmiDecryptionError",
    "iter_records",
    "read_nem12_batches",
    "read_nem12_table",
]
