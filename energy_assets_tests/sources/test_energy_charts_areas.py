"""Country and bidding-zone codes: checked against the published lists and normalized before any file is written."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest

from energy_assets.defs.energy_charts.resources import EnergyChartsResource
from energy_assets.errors import ConfigurationError
from energy_assets.sources.energy_charts.areas import (
    BIDDING_ZONES,
    COUNTRIES,
    UnknownAreaError,
    normalize_bidding_zone,
    normalize_bidding_zones,
    normalize_countries,
    normalize_country,
)

HOSTILE_CODES = ["../../../../x", "de'", "de/..", "de;drop", "", "   ", "d e", "de\x00"]


@pytest.mark.parametrize(
    ("given", "expected"), [("de", "de"), ("DE", "de"), (" De \n", "de"), ("NIE", "nie"), ("all", "all")]
)
def test_country_is_stripped_and_lower_cased(given: str, expected: str) -> None:
    assert normalize_country(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("DE-LU", "DE-LU"),
        (" DE-LU", "DE-LU"),
        ("de-lu", "DE-LU"),
        ("it-north", "IT-North"),
        ("IT-SARDINIA", "IT-Sardinia"),
        ("no2nsl", "NO2NSL"),
        ("dk1 ", "DK1"),
    ],
)
def test_bidding_zone_takes_its_published_spelling(given: str, expected: str) -> None:
    assert normalize_bidding_zone(given) == expected


@pytest.mark.parametrize("code", HOSTILE_CODES)
def test_hostile_country_codes_are_refused(code: str) -> None:
    with pytest.raises(UnknownAreaError) as raised:
        normalize_country(code)

    message = str(raised.value)
    assert message.startswith(f"countries: {code!r} is not an Energy-Charts country code.")
    assert "Valid codes: de, ch, eu, all, al, am, at," in message
    assert "Set countries to codes from this list in the energy_charts resource config" in message
    assert raised.value.setting == "countries"
    assert raised.value.value == code


def test_refusal_of_a_path_traversal_quotes_the_value_exactly() -> None:
    with pytest.raises(
        UnknownAreaError, match=r"^countries: '\.\./\.\./\.\./\.\./x' is not an Energy-Charts"
    ):
        normalize_country("../../../../x")
    with pytest.raises(UnknownAreaError, match=r"""^countries: "de'" is not an Energy-Charts country code"""):
        normalize_country("de'")


@pytest.mark.parametrize("code", ["xx", "DE-LU", "DK1", "germany", None, 49])
def test_unknown_or_non_country_values_are_refused(code: object) -> None:
    with pytest.raises(UnknownAreaError, match=f"^countries: {re.escape(repr(code))} is not"):
        normalize_country(code)


@pytest.mark.parametrize("code", ["DE", "XX", "DE LU", "../DE-LU", "DE-LU'", "de_lu", None])
def test_unknown_bidding_zones_are_refused_with_the_list(code: object) -> None:
    with pytest.raises(UnknownAreaError) as raised:
        normalize_bidding_zone(code)

    message = str(raised.value)
    assert message.startswith(f"bidding_zones: {code!r} is not an Energy-Charts bidding zone code.")
    assert "Valid codes: AT, BE, BG, CH, CZ, DE-LU, DE-AT-LU," in message
    assert "IT-North" in message


def test_the_setting_is_named_in_the_message() -> None:
    with pytest.raises(UnknownAreaError, match="^installed_power_country: 'xx' is not"):
        normalize_country("xx", setting="installed_power_country")


def test_lists_are_normalized_in_order_and_deduplicated() -> None:
    assert normalize_countries(["DE", " fr", "de", "AT"]) == ["de", "fr", "at"]
    assert normalize_bidding_zones(["de-lu", "NL", "DE-LU "]) == ["DE-LU", "NL"]


def test_an_empty_list_or_a_bare_string_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="^countries: the list is empty"):
        normalize_countries([])
    with pytest.raises(
        ConfigurationError, match="^bidding_zones: expected a list of codes, got the string 'DE-LU'"
    ):
        normalize_bidding_zones("DE-LU")


def test_published_lists_are_safe_path_segments_and_unambiguous() -> None:
    assert len(COUNTRIES) == 47
    assert len(BIDDING_ZONES) == 45
    assert all(re.fullmatch(r"[a-z]+", code) for code in COUNTRIES)
    assert all(re.fullmatch(r"[A-Za-z0-9-]+", zone) for zone in BIDDING_ZONES)
    assert len({zone.casefold() for zone in BIDDING_ZONES}) == len(BIDDING_ZONES)
    assert {"de", "at", "nie", "xk"} <= set(COUNTRIES)
    assert {"DE-LU", "DE-AT-LU", "IT-Centre-North", "SE4"} <= set(BIDDING_ZONES)


def test_resource_holds_normalized_codes() -> None:
    resource = EnergyChartsResource(
        countries=["DE", " fr"], bidding_zones=[" DE-LU", "nl"], installed_power_country=" AT"
    )

    assert resource.countries == ["de", "fr"]
    assert resource.bidding_zones == ["DE-LU", "NL"]
    assert resource.installed_power_country == "at"


def test_resource_defaults_are_unchanged() -> None:
    resource = EnergyChartsResource()

    assert (resource.countries, resource.bidding_zones, resource.installed_power_country) == (
        ["de"],
        ["DE-LU"],
        "de",
    )
    assert resource.request_deadline_s == 45.0
    assert resource.max_response_bytes == 50 * 1024 * 1024


@pytest.mark.parametrize(
    ("settings", "prefix"),
    [
        ({"countries": ["de", "../../../../x"]}, "countries: '../../../../x' is not"),
        ({"countries": ["de'"]}, """countries: "de'" is not"""),
        (
            {"bidding_zones": ["DE-LU", "DE'; DROP TABLE x; --"]},
            """bidding_zones: "DE'; DROP TABLE x; --" is not""",
        ),
        ({"installed_power_country": "../de"}, "installed_power_country: '../de' is not"),
        ({"installed_power_country": "DE-LU"}, "installed_power_country: 'DE-LU' is not"),
    ],
)
def test_resource_refuses_a_bad_code_at_construction(settings: dict, prefix: str) -> None:
    with pytest.raises(UnknownAreaError) as raised:
        EnergyChartsResource(**settings)

    assert str(raised.value).startswith(prefix)
    assert "Valid codes: " in str(raised.value)


def test_resource_refuses_non_positive_limits() -> None:
    with pytest.raises(ConfigurationError, match="^request_deadline_s must be positive, got 0.0"):
        EnergyChartsResource(request_deadline_s=0)
    with pytest.raises(ConfigurationError, match="^max_response_bytes must be positive, got -1"):
        EnergyChartsResource(max_response_bytes=-1)


def test_a_bad_code_in_the_launchpad_config_fails_the_run_before_any_file_is_written(tmp_path: Path) -> None:
    """Run config (as edited in the launchpad) builds the resource when the run starts: no step runs."""
    raw_root = tmp_path / "data_home" / "lake" / "raw"

    @dg.asset
    def raw_files(energy_charts: EnergyChartsResource) -> None:
        for country in energy_charts.countries:
            path = raw_root / "energy_charts" / "public_power" / country / "2025-03-30.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}")

    run_config = {"resources": {"energy_charts": {"config": {"countries": ["de", "../../../../x"]}}}}
    with pytest.raises(dg.DagsterResourceFunctionError) as raised:
        dg.materialize(
            [raw_files],
            resources={"energy_charts": EnergyChartsResource.configure_at_launch()},
            run_config=run_config,
        )

    cause = raised.value.__cause__
    assert isinstance(cause, UnknownAreaError)
    assert str(cause).startswith("countries: '../../../../x' is not an Energy-Charts country code.")
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []


def test_upper_case_in_the_launchpad_config_reaches_the_asset_normalized(tmp_path: Path) -> None:
    written: list[Path] = []

    @dg.asset
    def raw_files(energy_charts: EnergyChartsResource) -> None:
        for zone in energy_charts.bidding_zones:
            path = tmp_path / "raw" / "price" / zone / "2025-03-30.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}")
            written.append(path)
        assert energy_charts.countries == ["de"]

    run_config = {
        "resources": {"energy_charts": {"config": {"countries": [" DE"], "bidding_zones": [" de-lu"]}}}
    }
    result = dg.materialize(
        [raw_files],
        resources={"energy_charts": EnergyChartsResource.configure_at_launch()},
        run_config=run_config,
    )

    assert result.success
    assert written == [tmp_path / "raw" / "price" / "DE-LU" / "2025-03-30.json"]
