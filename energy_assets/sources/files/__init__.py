"""Users' own files as a declared source: the declaration, the CSV reader, inference from a sample,
pseudonyms for sensitive columns, audit rules, and the ingest of one file. No Dagster here.

- `declaration`: what a `FileSource` declares (columns, key, times, partitioning, rules, marts);
- `reader`: the streaming CSV reader (header quirks, strict typed conversion, errors naming file, line, column);
- `local_times`: wall-clock times in an IANA zone to UTC, with the ambiguous/nonexistent policy;
- `inference`: a declaration from a whole sample file;
- `rules`: the declaration's audit rules as the warehouse's `AuditRule` SQL;
- `ledger`: the per-source durable record of files and protected values, in PostgreSQL;
- `ingest`: one inbox file, from ledger to `processed/`.
"""
