"""Sources as declarations: the bundled defs.yaml files give exactly the platform's keys, a second
Energy-Charts instance declared under ENERGY_ASSETS_SOURCES_DIR loads and materializes beside the first,
and a broken declaration is refused with its file, line and attribute."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from energy_assets.defs.build import build_defs
from energy_assets.defs.declarations import (
    ENV_SOURCES_DIR,
    DeclarationError,
    declaration_folders,
    declared_sources,
    load_declarations,
)
from energy_assets.defs.energy_charts.resources import EnergyChartsResource
from energy_assets.defs.resources import LakeResource, PostgresResource
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.settings import DataHome
from energy_assets.sources.energy_charts.snapshot import SAMPLE_DIR
from energy_assets_tests.sources.energy_charts_server import EnergyChartsTestServer, Scripted

SNAPSHOT = Path(__file__).resolve().parents[1] / "fixtures" / "definitions_snapshot.json"

FRANCE = """\
type: energy_assets.components.EnergyChartsSource
attributes:
  name: energy_charts_fr
  countries: [fr]
  bidding_zones: [FR]
  installed_power_country: fr
  daily_schedule: "0 7 * * *"
"""


def key_sets(defs: dg.Definitions) -> dict[str, list[str]]:
    graph = defs.resolve_asset_graph()
    return {
        "assets": sorted("/".join(key.path) for key in graph.get_all_asset_keys()),
        "checks": sorted(
            f"{'/'.join(check.asset_key.path)}:{check.name}" for check in graph.asset_check_keys
        ),
        "jobs": sorted(job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")),
        "schedules": sorted(schedule.name for schedule in defs.schedules or []),
        "sensors": sorted(sensor.name for sensor in defs.sensors or []),
        "groups": sorted({graph.get(key).group_name for key in graph.get_all_asset_keys()}),
        "resources": sorted(defs.resources or {}),
    }


def declare(root: Path, folder: str, text: str) -> Path:
    (root / folder).mkdir(parents=True)
    (root / folder / "defs.yaml").write_text(text)
    return root / folder


def test_bundled_declarations_give_exactly_the_platforms_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The snapshot was taken from the hand-built definitions before the sources became declarations.
    monkeypatch.setenv(ENV_SOURCES_DIR, str(tmp_path / "none yet"))
    assert key_sets(build_defs()) == json.loads(SNAPSHOT.read_text())


def test_a_second_energy_charts_instance_loads_and_materializes_beside_the_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data_home: DataHome, pg_settings: PostgresSettings
) -> None:
    declare(tmp_path / "sources", "energy_charts_fr", FRANCE)
    monkeypatch.setenv(ENV_SOURCES_DIR, str(tmp_path / "sources"))
    server = EnergyChartsTestServer().start()
    try:
        # The loopback server answers France with the recorded German day (same shapes, quirks included).
        server.script(
            "public_power",
            [Scripted(200, json.loads((SAMPLE_DIR / "public_power_de_2023-12-31.json").read_text()))],
        )
        server.script(
            "price", [Scripted(200, json.loads((SAMPLE_DIR / "price_DE-LU_2023-12-31.json").read_text()))]
        )
        lake = LakeResource(path=str(tmp_path / "lake"))
        defs = build_defs(
            resource_overrides={
                "lake": lake,
                "postgres": PostgresResource(data_home=str(data_home.root)),
                "energy_charts_fr": EnergyChartsResource(
                    source="live",
                    base_url=server.base_url,
                    countries=["fr"],
                    bidding_zones=["FR"],
                    installed_power_country="fr",
                    min_seconds_between_requests=0.0,
                ),
            }
        )
        keys = key_sets(defs)
        for key in (
            "energy_charts/public_power",
            "energy_charts_fr/public_power",
            "raw/energy_charts_fr/price",
        ):
            assert key in keys["assets"]
        assert "marts/energy_charts_fr_daily_production_trend" in keys["assets"]
        assert {"energy_charts_daily_job", "energy_charts_fr_daily_job"} <= set(keys["jobs"])
        assert {"energy_charts_daily_schedule", "energy_charts_fr_daily_schedule"} <= set(keys["schedules"])
        assert defs.resolve_schedule_def("energy_charts_fr_daily_schedule").cron_schedule == "0 7 * * *"
        assert defs.resolve_schedule_def("energy_charts_daily_schedule").cron_schedule == "30 6 * * *"

        job = defs.resolve_job_def("energy_charts_fr_daily_job")
        result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), partition_key="2023-12-31")
        assert result.success
        assert sorted(
            (r.endpoint, r.params.get("country") or r.params.get("bzn")) for r in server.requests
        ) == [
            ("price", "FR"),
            ("public_power", "fr"),
        ]
    finally:
        server.stop()
    with connect(pg_settings) as conn:
        fr_rows = conn.execute(
            "SELECT count(*), count(DISTINCT country) FROM energy_charts_fr.public_power WHERE country = 'fr'"
        ).fetchone()
        prices = conn.execute(
            "SELECT count(*) FROM energy_charts_fr.day_ahead_price WHERE bidding_zone = 'FR'"
        ).fetchone()
        mart = conn.execute(
            "SELECT count(*) FROM marts.energy_charts_fr_daily_production_trend WHERE country = 'fr'"
        ).fetchone()
    assert fr_rows[0] > 96 and fr_rows[1] == 1
    assert prices[0] == 24
    assert mart[0] > 0
    assert (tmp_path / "lake" / "energy_charts_fr.public_power" / "country=fr" / "date=2023-12-31").is_dir()
    assert (lake.raw_dir() / "energy_charts_fr" / "public_power" / "fr" / "2023-12-31.json").is_file()


@pytest.mark.parametrize(
    ("attributes", "line", "expected"),
    [
        ("  countrys: [fr]\n", 4, "attribute countrys: no such attribute; remove it or fix its spelling"),
        ("  countries: fr\n", 4, "attribute countries: Input should be a valid list, got 'fr'"),
        ("  countries: [fr, xx]\n", 4, "attribute countries: 'xx' is not an Energy-Charts country code."),
        ("  daily_schedule: every day\n", 4, "attribute daily_schedule: 'every day' is not a cron schedule"),
        ("  timezone: Europe/London\n", None, "de reports local days in Europe/Berlin, not Europe/London"),
    ],
)
def test_a_wrong_declaration_names_file_line_and_attribute(
    tmp_path: Path, attributes: str, line: int | None, expected: str
) -> None:
    folder = declare(
        tmp_path,
        "broken",
        f"type: energy_assets.components.EnergyChartsSource\nattributes:\n  name: broken\n{attributes}",
    )
    with pytest.raises(DeclarationError) as raised:
        load_declarations([folder])
    message = str(raised.value)
    assert message.startswith(f"{folder / 'defs.yaml'}: the declaration does not validate: ")
    assert expected in message
    if line is not None:
        assert f"line {line}, " in message
    assert "Traceback" not in message and "\n" not in message


def test_unknown_component_duplicate_name_and_escaping_inbox_are_refused(tmp_path: Path) -> None:
    unknown = declare(tmp_path, "unknown", "type: energy_assets.components.NoSuchSource\nattributes: {}\n")
    with pytest.raises(
        DeclarationError, match=r"`type:` names no component this project knows .*NoSuchSource"
    ):
        load_declarations([unknown])

    first = declare(tmp_path, "one", FRANCE)
    second = declare(tmp_path, "two", FRANCE)
    with pytest.raises(DeclarationError) as raised:
        load_declarations([first, second])
    assert str(raised.value) == (
        f"{second / 'defs.yaml'}: source name 'energy_charts_fr' is already declared in {first / 'defs.yaml'};"
        " give one of them another `name:` attribute."
    )

    inbox = declare(
        tmp_path, "inbox", "type: energy_assets.components.Nem12Inbox\nattributes:\n  inbox: ../../etc\n"
    )
    with pytest.raises(
        DeclarationError, match=r"line 3, attribute inbox: '\.\./\.\./etc' leaves the data home"
    ):
        load_declarations([inbox])


def test_a_broken_operator_declaration_fails_the_code_location_with_its_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    declare(tmp_path, "bad", FRANCE.replace("countries: [fr]", "countries: [fr, zz]"))
    monkeypatch.setenv(ENV_SOURCES_DIR, str(tmp_path))
    with pytest.raises(
        DeclarationError, match=rf"^{tmp_path}/bad/defs.yaml: .*line 4, attribute countries: 'zz'"
    ):
        build_defs()


def test_an_operator_declaration_reconfigures_a_bundled_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    inbox = tmp_path / "nem12" / "inbox"
    declare(
        tmp_path / "sources",
        "meters",
        f"type: energy_assets.components.Nem12Inbox\nattributes:\n  inbox: {inbox}\n",
    )
    monkeypatch.setenv(ENV_SOURCES_DIR, str(tmp_path / "sources"))
    sources = {source.name: source for source in declared_sources()}
    assert sorted(sources) == ["buildings", "energy_charts", "meters"]
    assert sources["meters"].folder == tmp_path / "sources" / "meters"
    assert build_defs().resources["meters"].inbox == str(inbox)


@pytest.mark.parametrize(
    ("folder", "text", "expected"),
    [
        (
            "taken",
            "type: energy_assets.components.EnergyChartsSource\nattributes:\n  name: postgres\n",
            "attribute name: 'postgres' is taken by the platform",
        ),
        (
            "long",
            f"type: energy_assets.components.EnergyChartsSource\nattributes:\n  name: {'x' * 41}\n",
            "is longer than 40 characters",
        ),
        (
            "two",
            FRANCE + "---\n" + FRANCE.replace("energy_charts_fr", "energy_charts_it"),
            "declares 2 components; declare one source per defs.yaml",
        ),
        ("empty", "", "declares no component; write `type: energy_assets.components.<Type>`"),
        ("syntax", "type: [unclosed\n", "not valid YAML ("),
        (
            "bundled",
            "type: energy_assets.components.EnergyChartsSource\nattributes:\n  name: buildings\n",
            "attribute name: 'buildings' is taken by the platform",
        ),
    ],
)
def test_odd_declarations_are_refused_in_one_line(
    tmp_path: Path, folder: str, text: str, expected: str
) -> None:
    path = declare(tmp_path, folder, text)
    with pytest.raises(DeclarationError) as raised:
        load_declarations([path])
    assert str(raised.value).startswith(f"{path / 'defs.yaml'}: ")
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_declaration_that_is_not_a_file_and_a_relative_sources_dir_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "sources" / "broken" / "defs.yaml").mkdir(parents=True)
    with pytest.raises(
        DeclarationError, match=r"broken/defs.yaml: not a readable file \(a folder or a broken link\)"
    ):
        declaration_folders(tmp_path / "sources")
    monkeypatch.setenv(ENV_SOURCES_DIR, "relative/sources")
    with pytest.raises(DeclarationError, match="ENERGY_ASSETS_SOURCES_DIR='relative/sources' is relative"):
        declared_sources()
    (tmp_path / "a file").write_text("")
    monkeypatch.setenv(ENV_SOURCES_DIR, str(tmp_path / "a file"))
    with pytest.raises(DeclarationError, match="is not a folder; point it at a folder"):
        declared_sources()
