"""The Dagster layer: resources, per-source assets/checks/schedules, and `build_defs()`.

Dagster marks `backfill_policy` beta and partitioned checks preview; we use both on purpose, so
their warnings are silenced here once instead of on every import.
"""

import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
