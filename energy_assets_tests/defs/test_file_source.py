"""A declared file source end to end on the session's cluster: `source add` from a sample, sensor ticks,
ingest runs, revisions with history, pseudonyms nowhere in clear, quarantine with file, line and column."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from energy_assets import cli
from energy_assets.defs.declarations import ENV_SOURCES_DIR, load_declarations
from energy_assets.defs.file_source import file_source_definitions, resource_key
from energy_assets.defs.file_source.resources import FileSourceResource
from energy_assets.defs.resources import LakeResource, PostgresResource
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.settings import DataHome
from energy_assets.sources.files.declaration import FileSourceDeclaration
from energy_assets.sources.files.ledger import FileLedger
from energy_assets.sources.meters.identifiers import NmiProtector, generate_keys

HEADER = "Session ID,Customer Email,Station,Start Date,Start Time,Energy (kWh)\n"
FIRST = HEADER + (
    "S1,alice@example.org,A1,06/09/2018,08:33,12.5\n"
    "S2,bob@example.org,A2,13/09/2018,23:05,7.25\n"
    "S3,alice@example.org,A1,01/10/2018,10:00,3.0\n"
)
# Revises S2's energy; S4 is Alice again, in another file.
SECOND = (
    HEADER
    + "S2,bob@example.org,A2,13/09/2018,23:05,8.0\nS3,alice@example.org,A1,01/10/2018,10:00,3.0\nS4,alice@example.org,A3,02/10/2018,11:00,1.0\n"
)
CLEAR = ["alice@example.org", "bob@example.org"]


@pytest.fixture
def source(tmp_path: Path, data_home: DataHome, monkeypatch) -> dict:
    name = f"ev_{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv(ENV_SOURCES_DIR, str(tmp_path / "sources"))
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(data_home.root))
    sample = tmp_path / "sample.csv"
    sample.write_text(FIRST)
    code = cli.main(
        [
            "source",
            "add",
            name,
            "--sample",
            str(sample),
            "--time",
            "Start Date+Start Time",
            "--timezone",
            "Europe/London",
            "--sensitive",
            "Customer Email",
            "--key",
            "session_id",
        ]
    )
    assert code == 0
    [declared] = load_declarations([tmp_path / "sources" / name])
    declaration = FileSourceDeclaration.model_validate(declared.component.model_dump())  # type: ignore[attr-defined]
    hmac_key, fernet_key = generate_keys()
    inbox = tmp_path / "inbox" / name
    resources = {
        resource_key(declaration): FileSourceResource(
            inbox=str(inbox), hmac_key=hmac_key, fernet_keys=fernet_key
        ),
        "lake": LakeResource(data_home=str(data_home.root)),
        "postgres": PostgresResource(data_home=str(data_home.root)),
    }
    defs = file_source_definitions(declaration)
    defs = dg.Definitions(assets=defs.assets, jobs=defs.jobs, sensors=defs.sensors, resources=resources)
    return {
        "name": name,
        "declaration": declaration,
        "inbox": inbox,
        "defs": defs,
        "resources": resources,
        "instance": dg.DagsterInstance.ephemeral(),
        "keys": (hmac_key, fernet_key),
        "folder": tmp_path,
        "yaml": (tmp_path / "sources" / name / "defs.yaml").read_text(),
    }


def tick(setup: dict, cursor: str | None):
    sensor = setup["defs"].resolve_sensor_def(f"{setup['name']}_inbox_sensor")
    context = dg.build_sensor_context(
        cursor=cursor, instance=setup["instance"], resources=setup["resources"], definitions=setup["defs"]
    )
    return sensor.evaluate_tick(context)


def drop_and_run(setup: dict, name: str, text: str) -> dg.ExecuteInProcessResult:
    inbox: Path = setup["inbox"]
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / name).write_text(text)
    first = tick(setup, None)
    assert first.run_requests == []  # not stable yet
    second = tick(setup, first.cursor)
    [request] = second.run_requests
    job = setup["defs"].resolve_job_def(f"{setup['name']}_ingest_job")
    return job.execute_in_process(
        run_config=request.run_config, instance=setup["instance"], raise_on_error=False, tags=request.tags
    )


def rows(settings: PostgresSettings, query: str) -> list[tuple]:
    with connect(settings) as conn:
        return conn.execute(query).fetchall()


def everything_written(setup: dict, settings: PostgresSettings, data_home: DataHome) -> str:
    """Every text the platform wrote about the source: its PostgreSQL tables, lake files, quarantine
    reports, the declaration, run logs and event metadata."""
    name = setup["name"]
    text = [setup["yaml"]]
    for table in ("records", "records__history", "ingested_files", "protected_values"):
        try:
            text.append(repr(rows(settings, f"SELECT * FROM {name}.{table}")))
        except Exception:  # a table not created (no history yet)
            pass
    lake = LakeResource(data_home=str(data_home.root))
    for folder in (lake.root(), lake.rejected_dir(), setup["inbox"] / "quarantine"):
        for path in sorted(folder.rglob("*")) if folder.exists() else []:
            if not path.is_file() or (name not in str(path) and path.suffix != ".json"):
                continue
            if path.suffix == ".parquet":  # compressed pages: search the values, not the bytes
                text.append(repr(pq.read_table(path).to_pylist()))
            else:
                text.append(path.read_bytes().decode("latin-1"))
    for run in setup["instance"].get_runs():
        text += [repr(event) for event in setup["instance"].all_logs(run.run_id)]
    return "\n".join(text)


def test_add_then_sensor_loads_revises_with_history_and_keeps_clear_values_nowhere(
    source, pg_settings, data_home
):
    name = source["name"]
    assert "alice" not in source["yaml"] and "sensitive: true" in source["yaml"]
    result = drop_and_run(source, "sessions_1.csv", FIRST)
    assert result.success
    got = rows(
        pg_settings,
        f"SELECT session_id, customer_email, energy_kwh, recorded_at FROM {name}.records ORDER BY 1",
    )
    assert [(r[0], r[2], r[3].isoformat()) for r in got] == [
        ("S1", 12.5, "2018-09-06T07:33:00+00:00"),
        ("S2", 7.25, "2018-09-13T22:05:00+00:00"),
        ("S3", 3.0, "2018-10-01T09:00:00+00:00"),
    ]
    protector = NmiProtector.from_text(*source["keys"])
    assert got[0][1] == got[2][1] == protector.pseudonym("alice@example.org")
    assert (source["inbox"] / "processed" / "sessions_1.csv").exists()

    result = drop_and_run(source, "sessions_2.csv", SECOND)
    assert result.success
    [materialization] = [
        m
        for m in result.asset_materializations_for_node(f"{name}__records")
        if m.asset_key.path[-1] == "records"
    ]
    assert (
        materialization.metadata["inserted"].value,
        materialization.metadata["updated"].value,
        materialization.metadata["unchanged"].value,
    ) == (1, 1, 1)
    got = rows(pg_settings, f"SELECT session_id, customer_email, energy_kwh FROM {name}.records ORDER BY 1")
    assert [(r[0], r[2]) for r in got] == [("S1", 12.5), ("S2", 8.0), ("S3", 3.0), ("S4", 1.0)]
    assert got[3][1] == got[0][1]  # Alice in the second file: the same pseudonym
    assert rows(pg_settings, f"SELECT session_id, energy_kwh FROM {name}.records__history") == [("S2", 7.25)]

    # Re-ingesting the same content under another name changes nothing.
    (source["inbox"] / "again.csv").write_text(SECOND)
    first = tick(source, None)
    assert tick(source, first.cursor).run_requests == []
    assert (source["inbox"] / "processed" / "again.csv").exists()

    tokens = dict(rows(pg_settings, f"SELECT pseudonym, token FROM {name}.protected_values"))
    assert sorted(protector.decrypt(t) for t in tokens.values()) == CLEAR
    # Rotation: a new key first; every token re-encrypted and still readable, also with the new key alone.
    new_key = generate_keys()[1]
    rotated = NmiProtector.from_text(source["keys"][0], f"{new_key},{source['keys'][1]}")
    with connect(pg_settings) as conn:
        assert FileLedger(name).rotate(conn, lambda ts: [rotated.rotate(t) for t in ts]) == 2
    only_new = NmiProtector.from_text(source["keys"][0], new_key)
    tokens = dict(rows(pg_settings, f"SELECT pseudonym, token FROM {name}.protected_values"))
    assert sorted(only_new.decrypt(t) for t in tokens.values()) == CLEAR

    written = everything_written(source, pg_settings, data_home)
    # The search sees the data (a session id from the lake and PostgreSQL, the pseudonyms), not the clear values.
    assert "'S4'" in written and written.count(protector.pseudonym("bob@example.org")) >= 3
    for clear in CLEAR:
        assert clear not in written


def lake_state(data_home: DataHome, name: str) -> dict[str, str]:
    root = data_home.root / "lake"
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and f"{name}" in str(p)
    }


@pytest.mark.parametrize(
    ("label", "text", "line", "column", "reason"),
    [
        (
            "bad_date",
            HEADER
            + "".join(
                f"X{i},c{i}@example.org,A1,{1 + i % 28:02d}/01/2019,10:00,1\n" for i in range(7_100)
            ).replace("X6998,c6998@example.org,A1,27/01/2019", "X6998,c6998@example.org,A1,32/01/2019"),
            7000,
            "Start Date",
            "is not a date/time",
        ),
        (
            "missing_column",
            "Session ID,Customer Email,Station,Start Time,Energy (kWh)\nS9,x@example.org,A1,10:00,1\n",
            1,
            "Start Date",
            "required column",
        ),
        (
            "duplicate_key",
            HEADER + "S7,x@example.org,A1,06/09/2018,08:33,1\nS7,y@example.org,A1,06/09/2018,09:33,2\n",
            3,
            "session_id",
            "unique_key",
        ),
        (
            "type_violation",
            HEADER + "S8,x@example.org,A1,06/09/2018,08:33,1\nS9,y@example.org,A1,06/09/2018,09:33,lots\n",
            3,
            "Energy (kWh)",
            "'lots' is not a number",
        ),
        (
            "no_time",
            HEADER + "S8,x@example.org,A1,06/09/2018,08:33,1\nS9,y@example.org,A1,,09:33,2\n",
            3,
            "recorded_at",
            "no time",
        ),
        (
            "ambiguous_time",
            HEADER + "S8,x@example.org,A1,06/09/2018,08:33,1\nS9,y@example.org,A1,28/10/2018,01:30,2\n",
            3,
            "recorded_at",
            "occurs twice",
        ),
    ],
)
def test_a_file_that_breaks_its_declaration_is_quarantined_and_nothing_changes(
    source, pg_settings, data_home, label, text, line, column, reason
):
    name = source["name"]
    assert drop_and_run(source, "seed.csv", FIRST).success
    before_rows = rows(pg_settings, f"SELECT * FROM {name}.records ORDER BY 1")
    before_lake = lake_state(data_home, name)
    result = drop_and_run(source, f"{label}.csv", text)
    assert not result.success
    report = json.loads((source["inbox"] / "quarantine" / f"{label}.csv.report.json").read_text())
    problem = report["problems"][0]
    assert report["file"] == f"{label}.csv"
    assert (problem["line"], problem["column"]) == (line, column)
    assert reason in problem["reason"]
    assert rows(pg_settings, f"SELECT * FROM {name}.records ORDER BY 1") == before_rows
    assert lake_state(data_home, name) == before_lake
    assert "@example.org" not in json.dumps(report)
    assert not (source["inbox"] / f"{label}.csv").exists()


def test_cli_ingest_prints_one_line_per_file_and_refuses_links_unread(
    tmp_path, data_home, monkeypatch, capsys
):
    name = f"cli_{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv(ENV_SOURCES_DIR, str(tmp_path / "sources"))
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(data_home.root))
    hmac_key, fernet_key = generate_keys()
    monkeypatch.setenv("ENERGY_METERS_NMI_HMAC_KEY", hmac_key)
    monkeypatch.setenv("ENERGY_METERS_NMI_FERNET_KEYS", fernet_key)
    sample = tmp_path / "sample.csv"
    sample.write_text(FIRST)
    add = [
        "source",
        "add",
        name,
        "--sample",
        str(sample),
        "--time",
        "start_date+start_time",
        "--timezone",
        "Europe/London",
        "--sensitive",
        "customer_email",
    ]
    assert cli.main(add) == 0
    out = capsys.readouterr().out
    assert "customer_email               text sensitive  <- 'Customer Email'" in out
    assert "key: session_id; time: recorded_at; partition: month; sensitive: customer_email" in out
    assert cli.main(add) == 0 and "exists; kept (use --force" in capsys.readouterr().out

    good, bad, link = tmp_path / "good.csv", tmp_path / "bad.csv", tmp_path / "link.csv"
    good.write_text(FIRST)
    bad.write_text(
        HEADER + "S8,x@example.org,A1,06/09/2018,08:33,1\nS9,y@example.org,A1,06/09/2018,09:33,lots\n"
    )
    target = tmp_path / "target.csv"
    target.write_text(SECOND)
    target.chmod(0)  # a link is refused before anything reads it (the target is not even readable)
    link.symlink_to(target)
    code = cli.main(["source", "ingest", name, str(good), str(link), str(bad), "--ephemeral-instance"])
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert code == 1, captured.err
    assert lines[0] == f"{good}: ok, 3 rows (inserted 3, updated 0, unchanged 0)"
    assert lines[1].startswith(f"{link}: FAILED: a symbolic link")
    assert (
        lines[2].startswith(f"{bad}: FAILED: ")
        and "line 3, column Energy (kWh): 'lots' is not a number" in lines[2]
    )
    assert lines[2].endswith(f"moved to {data_home.root / 'inbox' / name / 'quarantine' / 'bad.csv'}")
    assert link.is_symlink() and len(lines) == 3

    again = tmp_path / "again.csv"
    again.write_text(FIRST)
    assert cli.main(["source", "ingest", name, str(again), "--ephemeral-instance"]) == 0
    assert (
        capsys.readouterr().out.strip()
        == f"{again}: ok, 3 rows (inserted 0, updated 0, unchanged 3); same content as good.csv"
    )

    assert cli.main(["source", "list"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"{name}:")]
    assert len(listed) == 1 and "1 file(s) loaded, 1 quarantined, 3 rows loaded, last load 20" in listed[0]

    assert cli.main(["source", "ingest", "nosuch", str(good)]) == 2
    assert "no file source named 'nosuch'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        cli.main(["source", "ingest", name])
    assert usage.value.code == 2


def test_a_declared_mart_is_published_to_marts_with_its_key(tmp_path, data_home, pg_settings):
    name = f"mart_{uuid.uuid4().hex[:6]}"
    mart = f"{name}_energy_per_day"
    declaration = FileSourceDeclaration.model_validate(
        {
            "name": name,
            "columns": [
                {"name": "session_id", "header": "Session ID", "nullable": False},
                {"name": "station", "header": "Station"},
                {
                    "name": "started_at",
                    "header": "Started",
                    "type": "timestamptz",
                    "format": "ISO8601",
                    "nullable": False,
                },
                {"name": "energy_kwh", "header": "Energy", "type": "float", "minimum": 0},
            ],
            "key": ["session_id"],
            "time_column": "started_at",
            "partition": "month",
            "marts": [
                {
                    "name": mart,
                    "key": ["day", "station"],
                    "sql": "SELECT CAST(started_at AS DATE) AS day, station, sum(energy_kwh) AS energy_kwh,"
                    " count(*) AS sessions FROM records GROUP BY 1, 2",
                }
            ],
        }
    )
    defs = file_source_definitions(declaration)
    setup = {
        "name": name,
        "inbox": tmp_path / "inbox",
        "instance": dg.DagsterInstance.ephemeral(),
        "resources": {
            resource_key(declaration): FileSourceResource(inbox=str(tmp_path / "inbox")),
            "lake": LakeResource(data_home=str(data_home.root)),
            "postgres": PostgresResource(data_home=str(data_home.root)),
        },
    }
    setup["defs"] = dg.Definitions(
        assets=defs.assets, jobs=defs.jobs, sensors=defs.sensors, resources=setup["resources"]
    )
    text = (
        "Session ID,Station,Started,Energy\n"
        "a,A1,2024-01-01T10:00:00Z,1.5\nb,A1,2024-01-01T12:00:00+01:00,2.0\nc,B2,2024-01-02T09:00:00Z,4.0\n"
    )
    assert drop_and_run(setup, "day.csv", text).success
    assert rows(
        pg_settings, f"SELECT day::text, station, energy_kwh, sessions FROM marts.{mart} ORDER BY 1, 2"
    ) == [
        ("2024-01-01", "A1", 3.5, 2),
        ("2024-01-02", "B2", 4.0, 1),
    ]
