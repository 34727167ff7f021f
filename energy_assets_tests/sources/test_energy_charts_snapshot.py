"""The snapshot client and the bundled sample: offline answers in the real API's shapes."""

from __future__ import annotations

import json
from datetime import date

import pytest

from energy_assets.sources.energy_charts.errors import SnapshotNotRecordedError
from energy_assets.sources.energy_charts.local_days import (
    expected_intervals,
    local_day_window,
    local_days_window,
)
from energy_assets.sources.energy_charts.responses import normalize_price, normalize_public_power
from energy_assets.sources.energy_charts.snapshot import SAMPLE_DAYS, SAMPLE_DIR, SnapshotEnergyChartsClient


@pytest.mark.parametrize("day", SAMPLE_DAYS, ids=str)
def test_sample_covers_every_sample_day_for_power_and_price(day: date) -> None:
    client = SnapshotEnergyChartsClient()

    power = normalize_public_power(
        client.public_power("de", day, day), country="de", window=local_day_window(day)
    )
    price = normalize_price(
        client.price("DE-LU", day, day), bidding_zone="DE-LU", window=local_day_window(day)
    )

    assert set(
        power.power.group_by("production_type").aggregate([([], "count_all")])["count_all"].to_pylist()
    ) == {expected_intervals(day, 15)}
    price_minutes = 60 if day < date(2025, 10, 1) else 15
    assert price.table.num_rows == expected_intervals(day, price_minutes)


def test_sample_index_lists_every_file_and_every_file_is_compact_json() -> None:
    index = json.loads((SAMPLE_DIR / "index.json").read_text())
    files = {item["file"] for item in index["responses"]}

    assert files == {path.name for path in SAMPLE_DIR.glob("*.json")} - {"index.json"}
    assert len(files) == 13
    for name in files:
        text = (SAMPLE_DIR / name).read_text()
        body = json.loads(text)
        assert text == json.dumps(body, separators=(",", ":"))
        assert body["deprecated"] is False


def test_recorded_two_day_price_request_is_answered_as_recorded() -> None:
    client = SnapshotEnergyChartsClient()
    body = client.price("DE-LU", date(2025, 9, 30), date(2025, 10, 1))

    assert len(body["unix_seconds"]) == 120
    assert body["unix_seconds"][0] == 1759183200


def test_unrecorded_range_is_joined_from_single_days() -> None:
    client = SnapshotEnergyChartsClient()
    window = local_days_window(date(2025, 9, 30), date(2025, 10, 1))

    body = client.public_power("de", date(2025, 9, 30), date(2025, 10, 1))
    power = normalize_public_power(body, country="de", window=window).power

    assert len(body["unix_seconds"]) == 192
    assert power.num_rows == 19 * 192
    assert len(client.requests_made) == 1


def test_request_that_is_not_recorded_lists_what_is() -> None:
    client = SnapshotEnergyChartsClient()
    with pytest.raises(SnapshotNotRecordedError) as raised:
        client.public_power("de", date(2024, 2, 29), date(2024, 2, 29))

    message = str(raised.value)
    assert "GET /public_power?country=de&start=2024-02-29&end=2024-02-29" in message
    assert "/public_power?country=de&start=2025-03-30&end=2025-03-30" in message
    assert "ENERGY_ASSETS_SOURCE=live" in message


def test_installed_power_is_recorded_yearly_and_monthly() -> None:
    client = SnapshotEnergyChartsClient()

    assert client.installed_power("de", "yearly")["time"][-1] == "2025"
    assert client.installed_power("de", "monthly")["time"][-1] == "10.2025"


def test_a_damaged_recording_is_named_by_its_file(tmp_path) -> None:
    from energy_assets.cli import describe_expected_error
    from energy_assets.sources.energy_charts.errors import EnergyChartsResponseError
    from energy_assets.sources.energy_charts.snapshot import SnapshotEnergyChartsClient

    damaged = tmp_path / "price_DE-LU_2025-03-30.json"
    damaged.write_text('{"unix_seconds": [1743289200], "price": [')
    (tmp_path / "index.json").write_text(
        '{"responses": [{"endpoint": "price", "params": {"bzn": "DE-LU", "start": "2025-03-30",'
        ' "end": "2025-03-30"}, "file": "price_DE-LU_2025-03-30.json"}]}'
    )
    client = SnapshotEnergyChartsClient([tmp_path])
    try:
        client.price("DE-LU", date(2025, 3, 30), date(2025, 3, 30))
    except EnergyChartsResponseError as error:
        message = describe_expected_error(error)
    else:  # pragma: no cover
        raise AssertionError("a damaged recording must be refused")
    assert message is not None and str(damaged) in message and "not valid JSON" in message
    assert "\n" not in message.strip()
