"""Cross-cutting policy, in one place: concurrency, retries, owners and automation.

Keep asset logic out of this module. `build_defs` applies what can be applied to finished definitions
(`apply_policies`: owners, and automation on the marts); the asset factories read `POSTGRES_POOL` and
`NETWORK_RETRY` from here, since Dagster sets pools and retry policies on the op that runs an asset.

- `POSTGRES_POOL`: every asset that publishes to PostgreSQL takes a slot of this Dagster concurrency pool,
  so parallel runs (a backfill beside the daily schedule) queue their loads instead of competing for the
  same locks; `energy-assets dagster env` documents the default limit. Two loads into one partition are
  additionally serialized by the publish path's advisory locks, whatever the pool allows.
- `NETWORK_RETRY`: a step that calls an external API is retried once, after 5 s. The clients already retry
  each request (connection errors, 429 with Retry-After, 5xx) within its deadline (`energy_assets.http`), so
  the step retry is for what they do not retry (a body cut mid-transfer); an error whose `client_retried`
  is set needs no step retry (a refused audit is not retried either: the data would be the same). A dead
  API thus fails a step within 2 x the request deadline + 5 s: with the Energy-Charts defaults (45 s and
  one request per second) 2 x 46 + 5 = 97 s.
- Freshness is one mechanism, the partition-aware check `latest_partition_fresh` of each daily table
  (`defs/energy_charts/checks.py`): it asks whether the newest *partition* is recent, which Dagster's
  FreshnessPolicy (time since the last materialization, whatever partition) cannot tell after a backfill.
- Automation: marts follow their inputs (declarative automation, `MART_AUTOMATION`): a mart partition is
  materialized when an upstream partition was updated and every blocking check of its inputs passed.
"""

from __future__ import annotations

import dagster as dg

POSTGRES_POOL = "postgres_loads"

NETWORK_RETRY = dg.RetryPolicy(max_retries=1, delay=5)

OWNERS = ["team:energy-data"]

MART_AUTOMATION = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
MARTS_GROUP = "marts"


def apply_policies(defs: dg.Definitions) -> dg.Definitions:
    """Owners on every asset; automation on the marts."""

    def with_policy(spec: dg.AssetSpec) -> dg.AssetSpec:
        changes: dict = {"owners": list(spec.owners) or OWNERS}
        if spec.group_name == MARTS_GROUP and spec.automation_condition is None:
            changes["automation_condition"] = MART_AUTOMATION
        return spec.replace_attributes(**changes)

    return defs.map_asset_specs(func=with_policy)
