"""Cross-cutting policy, in one place: concurrency, retries, freshness and owners.

Keep asset logic out of this module. `build_defs` applies what can be applied to finished definitions
(`apply_policies`: freshness and owners by group); the asset factories read `POSTGRES_POOL` and
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
- Freshness: daily source tables are expected to have yesterday's partition every morning.
- Automation: marts follow their inputs (declarative automation, `MART_AUTOMATION`): a mart partition is
  materialized when an upstream partition was updated and every blocking check of its inputs passed.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

POSTGRES_POOL = "postgres_loads"

NETWORK_RETRY = dg.RetryPolicy(max_retries=1, delay=5)

DAILY_SOURCE_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=54), warn_window=timedelta(hours=30)
)

OWNERS = ["team:energy-data"]

MART_AUTOMATION = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
MARTS_GROUP = "marts"

# Groups whose tables follow a daily upstream and should be fresh by the morning.
DAILY_SOURCE_GROUPS = ("energy_charts",)


def apply_policies(defs: dg.Definitions) -> dg.Definitions:
    """Owners on every asset; a freshness policy on the daily source groups; automation on the marts."""

    def with_policy(spec: dg.AssetSpec) -> dg.AssetSpec:
        changes: dict = {"owners": list(spec.owners) or OWNERS}
        if spec.group_name in DAILY_SOURCE_GROUPS and spec.partitions_def is not None:
            changes["freshness_policy"] = DAILY_SOURCE_FRESHNESS
        if spec.group_name == MARTS_GROUP and spec.automation_condition is None:
            changes["automation_condition"] = MART_AUTOMATION
        return spec.replace_attributes(**changes)

    return defs.map_asset_specs(func=with_policy)
