"""The Dagster instance of the platform: its `dagster.yaml`, the environment it reads, and its storage.

- `home`: writes the bundled `dagster.yaml` into DAGSTER_HOME and builds DAGSTER_PG_URL (no password: a
  passfile) for the `dagster` database of the managed cluster or of ENERGY_PG_URL's server;
- `storage`: dagster-postgres' storages with a small connection pool per store (`PooledPostgresStorage`);
- `dagster.yaml`: the instance configuration (runs, events and schedules in PostgreSQL over verify-full TLS).
"""
