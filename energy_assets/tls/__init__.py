"""TLS for PostgreSQL: the private certificate authority (`ca.py`). Pure Python, no Dagster."""
