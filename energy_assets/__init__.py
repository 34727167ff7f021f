"""energy_assets: a Dagster data platform for energy data.

Pure domain code lives in `tls`, `postgres`, `warehouse` and `sources`; the Dagster layer lives in `defs`.
"""

__version__ = "0.1.0"
