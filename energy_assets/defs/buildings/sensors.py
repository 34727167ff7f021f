"""The new-version sensor: tells the UI when the configured BDG2 record has a newer version on Zenodo.

It never switches versions by itself (a new version is a config change, BDG2_ZENODO_RECORD, which makes a
new cache entry); each daily tick says which version is configured and which is the latest. Keep HTTP out
of this module: the client lives in `energy_assets.sources.buildings`.
"""

import dagster as dg

from energy_assets.defs.buildings.resources import ZenodoResource


@dg.sensor(
    name="bdg2_new_version_sensor",
    minimum_interval_seconds=24 * 3600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=dg.AssetSelection.assets(dg.AssetKey(["raw", "buildings", "bdg2_archive"])),
    description=(
        "Daily: asks Zenodo for the latest version of the configured BDG2 record and reports it in the tick"
        " (no run is started; switch versions by setting BDG2_ZENODO_RECORD)."
    ),
)
def bdg2_new_version_sensor(context: dg.SensorEvaluationContext, zenodo: ZenodoResource) -> dg.SensorResult:
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
