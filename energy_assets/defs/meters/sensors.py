"""The inbox sensor of the NEM12 source: stable new files -> one run each, keyed by content.

Keep file logic out of this module: the tick is `energy_assets.defs.inbox.inbox_tick` (shared with the
file sources), listing, stability, hashing and moves live in `energy_assets.sources.meters.inbox`, the
durable record in `ledger` (`meters.ingested_files`).
"""

import dagster as dg

from energy_assets.defs.inbox import InboxRuns, inbox_tick
from energy_assets.defs.meters.jobs import ingest_run_config, meters_ingest_job
from energy_assets.defs.meters.resources import MetersResource
from energy_assets.defs.resources import PostgresResource
from energy_assets.sources.meters import ledger

SHA_TAG = "meters/sha256"
RUNS = InboxRuns(
    run_key_prefix="nem12", file_tag="meters/file", sha_tag=SHA_TAG, run_config=ingest_run_config
)


def inbox_sensor(interval_seconds: int, stable_ticks: int = 2) -> dg.SensorDefinition:
    """`meters_inbox_sensor`, ticking every `interval_seconds`; a file is stable after `stable_ticks` equal ticks."""

    def check_inbox(
        context: dg.SensorEvaluationContext, meters: MetersResource, postgres: PostgresResource
    ) -> dg.SensorResult:
        return inbox_tick(context, meters.layout(), postgres.settings(), ledger, RUNS, stable_ticks)

    return dg.sensor(
        name="meters_inbox_sensor",
        job=meters_ingest_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Watches the NEM12 inbox (ENERGY_ASSETS_INBOX): a file whose size and modification time did not change"
            f" over {stable_ticks} ticks is hashed; new content gets one run (run key nem12-<sha256>-<attempt>),"
            " content already loaded under another name is moved to processed/ without loading it again."
        ),
    )(check_inbox)
