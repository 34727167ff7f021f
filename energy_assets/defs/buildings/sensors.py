"""The new-version sensor: tells the UI when the configured BDG2 record has a newer version on Zenodo.

It never switches versions by itself (a new version is a config change, the declaration's `record` or
BDG2_ZENODO_RECORD, which makes a new cache entry); each tick (daily unless the declaration's
`version_check_interval_hours` says otherwise) says which version is configured and which is the latest. Keep HTTP out
of this module: the client lives in `energy_assets.sources.buildings`.
"""

import dagster as dg

from energy_assets.defs.buildings.resources import ZenodoResource


def new_version_sensor(interval_hours: int) -> dg.SensorDefinition:
    """`bdg2_new_version_sensor`, ticking every `interval_hours`."""
    return dg.sensor(
        name="bdg2_new_version_sensor",
        minimum_interval_seconds=interval_hours * 3600,
        default_status=dg.DefaultSensorStatus.RUNNING,
        asset_selection=dg.AssetSelection.assets(dg.AssetKey(["raw", "buildings", "bdg2_archive"])),
        description=(
            f"Every {interval_hours} h: asks Zenodo for the latest version of the configured BDG2 record and"
            " reports it in the tick (no run is started; switch versions with the declaration's `record`)."
        ),
    )(check_new_version)


def check_new_version(context: dg.SensorEvaluationContext, zenodo: ZenodoResource) -> dg.SensorResult:
    """One tick: the configured record and the latest version of it, reported (never switched to)."""
    client = zenodo.client()
    configured = client.record(zenodo.settings().record)
    latest = client.latest_version(configured.record_id)
    if latest.record_id == configured.record_id:
        message = f"Record {configured.record_id} is the latest version of BDG2 on {client.describe()}."
    else:
        message = (
            f"A newer BDG2 version exists: record {latest.record_id} (version {latest.version or '?'}, DOI"
            f" {latest.doi or '?'}); configured is {configured.record_id}. Set BDG2_ZENODO_RECORD={latest.record_id}"
            " to load it (a new cache entry; the current one stays)."
        )
        context.log.warning(message)
    return dg.SensorResult(skip_reason=dg.SkipReason(message), cursor=latest.cursor)
