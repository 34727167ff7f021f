"""The bundled BDG2 sample: served offline through the same cache and verification, in the real shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from energy_assets.sources.buildings import LiveZenodoClient, make_client
from energy_assets.sources.buildings.archive import Bdg2Archive
from energy_assets.sources.buildings.client import fetch_file
from energy_assets.sources.buildings.errors import ZenodoRecordNotFoundError
from energy_assets.sources.buildings.metadata import metadata_table
from energy_assets.sources.buildings.readings import convert_meter
from energy_assets.sources.buildings.sample_builder import SAMPLE_ZIP_NAME, write_sample
from energy_assets.sources.buildings.settings import BDG2_FILE_KEY, BuildingsSettings
from energy_assets.sources.buildings.snapshot import SAMPLE_DIR, SnapshotZenodoClient
from energy_assets.sources.buildings.weather import weather_table


def test_the_sample_is_small_and_its_record_lists_its_md5() -> None:
    zip_path = SAMPLE_DIR / SAMPLE_ZIP_NAME
    assert zip_path.stat().st_size < 300_000
    record = SnapshotZenodoClient().record("10.5281/zenodo.3887306")
    file = record.file(BDG2_FILE_KEY)
    assert file.size == zip_path.stat().st_size
    assert json.loads((SAMPLE_DIR / "index.json").read_text())["note"].startswith(
        "Synthetic BDG2-shaped sample"
    )


def test_the_sample_regenerates_byte_for_byte(tmp_path: Path) -> None:
    written = write_sample(tmp_path)
    assert written.read_bytes() == (SAMPLE_DIR / SAMPLE_ZIP_NAME).read_bytes()
    assert (tmp_path / "record_3887306.json").read_text() == (SAMPLE_DIR / "record_3887306.json").read_text()


def test_the_sample_runs_end_to_end_offline(tmp_path: Path) -> None:
    client = SnapshotZenodoClient()
    cache = client.cache_for(str(tmp_path / "cache"))

    cached = fetch_file(client, 3887306, BDG2_FILE_KEY, cache)

    assert cached.path.parts[-4:-2] == ("sample", "3887306")
    assert client.latest_version(3887306).record_id == 3887306
    with Bdg2Archive(cached.path) as archive:
        assert archive.available_meters() == ["electricity", "chilledwater", "hotwater", "gas", "water"]
        assert archive.available_meters("raw") == archive.available_meters()
        metadata = metadata_table(archive)
        weather = weather_table(archive)
        stats = convert_meter(archive, "electricity", tmp_path / "electricity.parquet")
    assert metadata.num_rows == 6
    assert sorted(set(weather.column("site_id").to_pylist())) == ["Fox", "Panther", "Robin"]
    assert stats.rows == 744
    assert stats.empty_buildings == ("Panther_parking_Lorriane",)
    assert stats.values + stats.empty_cells == 744 * 6
    assert pq.read_metadata(tmp_path / "electricity.parquet").num_rows == stats.values
    assert not fetch_file(client, 3887306, BDG2_FILE_KEY, cache).downloaded


def test_an_unrecorded_record_says_how_to_go_live() -> None:
    with pytest.raises(ZenodoRecordNotFoundError, match="ENERGY_ASSETS_SOURCE=live"):
        SnapshotZenodoClient().record(1234)


def test_the_source_switch_picks_the_client() -> None:
    assert isinstance(make_client(BuildingsSettings.from_env({})), SnapshotZenodoClient)
    live = make_client(BuildingsSettings.from_env({"ENERGY_ASSETS_SOURCE": "live"}))
    assert isinstance(live, LiveZenodoClient)
    assert live.base_url == "https://zenodo.org"
    assert live.namespace == "zenodo.org"
