"""The meter inbox end to end on the session's cluster: sensor ticks, ingest runs, revisions, quarantine.

Every test has its own inbox and lake under tmp_path; the tables are shared, so each test uses NMIs of its
own (sample files are rewritten with a test-specific NMI prefix).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from cryptography.fernet import Fernet

from energy_assets.defs.meters import MetersResource, inbox_sensor, ingest_files, meters_ingest_job
from energy_assets.defs.meters.assets import METER_ASSETS
from energy_assets.defs.meters.component import Nem12Inbox
from energy_assets.defs.resources import LakeResource, PostgresResource
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.settings import DataHome
from energy_assets.sources.meters import ledger
from energy_assets.sources.meters.identifiers import NmiProtector, generate_keys
from energy_assets.sources.meters.settings import SAMPLE_DIR
from energy_assets_tests.hostile_files import NEM12_MEMBER, fifo_with_a_writer, nem12_blank_lines_bomb

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nem12"
FIRST = SAMPLE_DIR / "NEM12_DEMO0001_MDPDEMO_RETDEMO.csv"
REVISION = SAMPLE_DIR / "NEM12_DEMO0002_MDPDEMO_RETDEMO.csv"
# The bundled declaration's sensor, built by the product's factory as the component does.
meters_inbox_sensor = inbox_sensor(Nem12Inbox().sensor_interval_seconds)


@pytest.fixture
def nmi_prefix() -> str:
    return f"T{uuid.uuid4().hex[:5].upper()}"


def own_copy(source: Path, folder: Path, prefix: str, name: str | None = None) -> Path:
    """The sample file with its NMIs (`QDEMO...`) renamed for this test."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or source.name)
    target.write_text(source.read_text().replace("QDEMO", prefix))
    return target


@pytest.fixture
def setup(tmp_path: Path, data_home: DataHome) -> dict:
    inbox = tmp_path / "inbox"
    resources = {
        "meters": MetersResource(inbox=str(inbox)),
        # The session's lake: meter tables are shared by the tests, and lake and PostgreSQL must agree.
        "lake": LakeResource(data_home=str(data_home.root)),
        "postgres": PostgresResource(data_home=str(data_home.root)),
    }
    defs = dg.Definitions(
        assets=METER_ASSETS, jobs=[meters_ingest_job], sensors=[meters_inbox_sensor], resources=resources
    )
    return {"inbox": inbox, "resources": resources, "defs": defs, "instance": dg.DagsterInstance.ephemeral()}


def tick(setup: dict, cursor: str | None):
    context = dg.build_sensor_context(cursor=cursor, instance=setup["instance"], resources=setup["resources"])
    return meters_inbox_sensor(context)


def rows(settings: PostgresSettings, query: str, *params: object) -> list[tuple]:
    with connect(settings) as connection:
        return connection.execute(query, params).fetchall()


def run(setup: dict, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    job = setup["defs"].resolve_job_def("meters_ingest_job")
    return job.execute_in_process(
        run_config=request.run_config, instance=setup["instance"], raise_on_error=False
    )


def test_sensor_waits_for_a_stable_file_then_requests_one_run_per_content(setup, nmi_prefix):
    path = own_copy(FIRST, setup["inbox"], nmi_prefix)
    os.utime(path, (978307200, 978307200))  # modified in 2001: an old file is still picked up

    first = tick(setup, None)
    assert first.run_requests == [] and "1 not yet stable" in first.skip_reason.skip_message
    second = tick(setup, first.cursor)
    [request] = second.run_requests
    import hashlib

    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert request.run_key == f"nem12-{sha}-0"
    assert request.run_config["ops"]["meters__meter_readings"]["config"] == {"path": str(path), "sha256": sha}
    with path.open("a") as growing:
        growing.write("\n")  # still being written: not stable on this tick
    third = tick(setup, second.cursor)
    assert third.run_requests == [] and "1 not yet stable" in third.skip_reason.skip_message


def test_ingest_revision_history_mart_and_duplicates(setup, nmi_prefix, pg_settings):
    first_path = own_copy(FIRST, setup["inbox"], nmi_prefix)
    cursor = tick(setup, None).cursor
    [request] = tick(setup, cursor).run_requests
    result = run(setup, request)
    assert result.success
    processed = setup["inbox"].parent / "processed"
    assert not first_path.exists() and (processed / first_path.name).exists()
    nmi = f"{nmi_prefix}00001"
    loaded = rows(
        pg_settings,
        "SELECT count(*), count(DISTINCT nmi_suffix) FROM meters.meter_readings WHERE nmi = %s",
        nmi,
    )
    assert loaded[0][0] > 0

    revision = own_copy(REVISION, setup["inbox"], nmi_prefix)
    cursor = tick(setup, None).cursor
    [request] = tick(setup, cursor).run_requests
    assert run(setup, request).success
    history = rows(
        pg_settings,
        "SELECT old_value, new_value, old_quality, new_quality, old_source_file, new_source_file"
        " FROM meters.meter_readings_history WHERE nmi = %s ORDER BY interval_end",
        nmi,
    )
    assert history, "the revision must keep the superseded readings"
    assert {row[4] for row in history} == {first_path.name} and {row[5] for row in history} == {revision.name}
    current = rows(
        pg_settings,
        "SELECT r.value, r.quality FROM meters.meter_readings r JOIN meters.meter_readings_history h"
        " USING (nmi, nmi_suffix, interval_end) WHERE r.nmi = %s ORDER BY r.interval_end LIMIT 1",
        nmi,
    )
    assert current[0] == (history[0][1], history[0][3])
    daily = rows(
        pg_settings,
        "SELECT count(*), min(actual_share), max(actual_share) FROM marts.nmi_daily_consumption WHERE nmi = %s",
        nmi,
    )
    assert daily[0][0] > 0 and 0 <= daily[0][1] <= daily[0][2] <= 1

    # The same content again, under another name: moved to processed/, no run.
    again = own_copy(FIRST, setup["inbox"], nmi_prefix, name="copy_of_first.csv")
    cursor = tick(setup, None).cursor
    result = tick(setup, cursor)
    assert result.run_requests == []
    assert "1 already loaded under another name" in result.skip_reason.skip_message
    assert not again.exists() and (processed / "copy_of_first.csv").exists()


@pytest.mark.parametrize(
    ("fixture", "line"),
    [("invalid_missing_900.csv", None), ("invalid_value_count.csv", None), ("nem13_accumulated.csv", None)],
)
def test_a_bad_file_is_quarantined_with_a_report_and_publishes_nothing(setup, pg_settings, fixture, line):
    path = setup["inbox"] / fixture
    setup["inbox"].mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / fixture, path)
    cursor = tick(setup, None).cursor
    [request] = tick(setup, cursor).run_requests
    result = run(setup, request)
    assert not result.success
    quarantined = setup["inbox"].parent / "quarantine" / fixture
    report = quarantined.with_name(quarantined.name + ".report.json")
    assert quarantined.exists() and report.exists() and not path.exists()
    import json

    problems = json.loads(report.read_text())["problems"]
    assert problems and problems[0]["line"] >= 1 and problems[0]["reason"]
    sha = request.run_config["ops"]["meters__meter_readings"]["config"]["sha256"]
    with connect(pg_settings) as conn:
        record = ledger.lookup(conn, [sha])[sha]
    assert record.status == "quarantined" and record.error


KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {root!r})
import dagster as dg
from energy_assets.sources.meters import ingest
from energy_assets.warehouse import loader
def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
if {where!r} == "before_commit":
    loader.WarehouseLoader.merge = killed
else:
    ingest.move_to_processed = killed
from energy_assets_tests.defs.test_meters_assets import build_for_subprocess
defs, run_config = build_for_subprocess({inbox!r}, {lake!r}, {home!r}, {path!r}, {sha!r})
defs.resolve_job_def("meters_ingest_job").execute_in_process(run_config=run_config, instance=dg.DagsterInstance.ephemeral())
"""


def build_for_subprocess(
    inbox: str, lake: str, home: str, path: str, sha: str
) -> tuple[dg.Definitions, dict]:
    from energy_assets.defs.meters import ingest_run_config

    resources = {
        "meters": MetersResource(inbox=inbox),
        "lake": LakeResource(path=lake),
        "postgres": PostgresResource(data_home=home),
    }
    return dg.Definitions(
        assets=METER_ASSETS, jobs=[meters_ingest_job], resources=resources
    ), ingest_run_config(path, sha)


def ingest_killed(setup: dict, data_home: DataHome, path: Path, sha: str, where: str) -> None:
    """Run the ingest job for `path` in a process that SIGKILLs itself `before_commit` or `after_commit`."""
    script = KILL_SCRIPT.format(
        root=str(Path(__file__).resolve().parents[2]),
        where=where,
        inbox=str(setup["inbox"]),
        lake=str(data_home.lake_dir),
        home=str(data_home.root),
        path=str(path),
        sha=sha,
    )
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]


def test_a_killed_ingest_leaves_the_file_in_the_inbox_and_the_next_tick_finishes_it(
    setup, nmi_prefix, pg_settings, data_home, tmp_path
):
    path = own_copy(FIRST, setup["inbox"], nmi_prefix)
    cursor = tick(setup, None).cursor
    [request] = tick(setup, cursor).run_requests
    sha = request.run_config["ops"]["meters__meter_readings"]["config"]["sha256"]
    ingest_killed(setup, data_home, path, sha, "before_commit")
    assert path.exists()
    nmi = f"{nmi_prefix}00001"
    assert rows(
        pg_settings,
        "SELECT to_regclass('meters.meter_readings') IS NULL"
        " OR NOT EXISTS (SELECT FROM meters.meter_readings WHERE nmi = %s)",
        nmi,
    ) == [(True,)]

    retry = tick(setup, cursor)
    [request] = retry.run_requests
    assert request.run_key == f"nem12-{sha}-1"  # a new attempt, not deduplicated away
    assert run(setup, request).success
    assert not path.exists()
    assert rows(pg_settings, "SELECT count(*) > 0 FROM meters.meter_readings WHERE nmi = %s", nmi) == [
        (True,)
    ]


def test_protected_identifiers_join_across_files_and_survive_key_rotation(setup, nmi_prefix, pg_settings):
    hmac_key, old_key = generate_keys()
    setup["resources"]["meters"] = MetersResource(
        inbox=str(setup["inbox"]), protect_nmi=True, hmac_key=hmac_key, fernet_keys=old_key
    )
    setup["defs"] = dg.Definitions(
        assets=METER_ASSETS,
        jobs=[meters_ingest_job],
        sensors=[meters_inbox_sensor],
        resources=setup["resources"],
    )
    nmi = f"{nmi_prefix}00001"
    for source in (FIRST, REVISION):
        own_copy(source, setup["inbox"], nmi_prefix)
        cursor = tick(setup, None).cursor
        [request] = tick(setup, cursor).run_requests
        assert run(setup, request).success
    protector = NmiProtector.from_text(hmac_key, old_key)
    pseudonym = protector.pseudonym(nmi)
    assert rows(pg_settings, "SELECT count(*) FROM meters.meter_readings WHERE nmi = %s", nmi) == [(0,)]
    files = rows(
        pg_settings, "SELECT count(DISTINCT source_file) FROM meters.meter_readings WHERE nmi = %s", pseudonym
    )
    assert files == [(2,)]  # both files' readings share the pseudonym
    [(token,)] = rows(
        pg_settings, "SELECT nmi_encrypted FROM meters.protected_nmis WHERE nmi = %s", pseudonym
    )
    assert protector.decrypt(token) == nmi

    new_key = Fernet.generate_key().decode()
    rotated = NmiProtector.from_text(hmac_key, f"{new_key},{old_key}")
    with connect(pg_settings) as conn:
        assert ledger.rotate_protected_nmis(conn, lambda tokens: [rotated.rotate(t) for t in tokens]) >= 1
    [(token,)] = rows(
        pg_settings, "SELECT nmi_encrypted FROM meters.protected_nmis WHERE nmi = %s", pseudonym
    )
    assert NmiProtector.from_text(hmac_key, new_key).decrypt(token) == nmi


def test_ingest_command_path_loads_and_reports_each_file(setup, nmi_prefix, tmp_path):
    outside = own_copy(FIRST, tmp_path / "downloads", nmi_prefix)
    bad = tmp_path / "downloads" / "invalid_no_header.csv"
    shutil.copy(FIXTURES / "invalid_no_header.csv", bad)

    outcomes = ingest_files(setup["defs"], setup["instance"], [outside, bad, tmp_path / "missing.csv"])

    assert [outcome.ok for outcome in outcomes] == [False, False, False] or outcomes[0].ok
    assert outcomes[0].ok and "rows" in outcomes[0].message
    assert not outcomes[1].ok and "quarantine" in outcomes[1].message
    assert not outcomes[2].ok and "no such file" in outcomes[2].message


def test_content_being_loaded_is_not_requested_twice_and_a_failed_run_gets_a_new_key(setup, nmi_prefix):
    own_copy(FIRST, setup["inbox"], nmi_prefix)
    cursor = tick(setup, None).cursor
    [request] = tick(setup, cursor).run_requests
    sha = request.tags["meters/sha256"]
    assert request.run_key == f"nem12-{sha}-0"
    job = setup["defs"].resolve_job_def("meters_ingest_job")
    queued = setup["instance"].create_run_for_job(
        job_def=job, run_config=request.run_config, tags=request.tags
    )

    waiting = tick(setup, cursor)
    assert waiting.run_requests == [] and "1 being loaded" in waiting.skip_reason.skip_message

    setup["instance"].report_run_failed(queued)
    [retry] = tick(setup, cursor).run_requests
    assert retry.run_key == f"nem12-{sha}-1"


def test_a_file_killed_after_its_commit_is_only_moved_on_retry(setup, nmi_prefix, pg_settings, data_home):
    path = own_copy(FIRST, setup["inbox"], nmi_prefix)
    cursor = tick(setup, None).cursor
    [request] = tick(setup, cursor).run_requests
    sha = request.run_config["ops"]["meters__meter_readings"]["config"]["sha256"]
    ingest_killed(setup, data_home, path, sha, "after_commit")
    with connect(pg_settings) as conn:
        assert ledger.lookup(conn, [sha])[sha].status == "committed"
    loads = "SELECT count(*) FROM energy_meta.load_log WHERE table_schema = 'meters' AND table_name = 'meter_readings'"
    before = rows(pg_settings, loads)
    [retry] = tick(setup, cursor).run_requests
    result = run(setup, retry)
    assert result.success
    assert not path.exists()
    # The retry only moved the file: no second load (a newer file's revisions could not be overwritten).
    assert rows(pg_settings, loads) == before
    [event] = [
        e for e in result.all_events if e.is_step_materialization and "meter_readings" in str(e.asset_key)
    ]
    assert (
        event.event_specific_data.materialization.metadata["file_status"].value
        == "committed by an earlier run"
    )
    with connect(pg_settings) as conn:
        assert ledger.lookup(conn, [sha])[sha].status == "processed"


SECRET = "root:x:0:0:Secret Marker:/root:/bin/bash"


def _inbox_folders(setup: dict) -> dict[str, list[str]]:
    """The names in inbox/, processed/ and quarantine/ (absent folders as empty)."""
    parent = setup["inbox"].parent
    return {
        name: sorted(path.name for path in (parent / name).iterdir()) if (parent / name).exists() else []
        for name in ("inbox", "processed", "quarantine")
    }


def test_ingest_refuses_links_fifos_and_folders_unread_and_unmoved(setup, tmp_path):
    secret = tmp_path / "passwd"
    secret.write_text(SECRET + "\n")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    link = downloads / "x.csv"
    link.symlink_to(secret)
    fifo = downloads / "pipe.csv"
    folder = downloads / "folder.csv"
    folder.mkdir()
    setup["inbox"].mkdir(parents=True)
    inbox_link = setup["inbox"] / "in_inbox.csv"
    inbox_link.symlink_to(secret)

    with fifo_with_a_writer(fifo, (SECRET + "\n").encode()):
        outcomes = ingest_files(setup["defs"], setup["instance"], [link, fifo, folder, inbox_link])

    assert [outcome.ok for outcome in outcomes] == [False, False, False, False]
    assert [outcome.message for outcome in outcomes] == [
        f"{path} is {kind}, not a regular file, and was not read; give the data file itself (links are not"
        " followed). It was left where it is."
        for path, kind in [
            (link, "a symbolic link"),
            (fifo, "a named pipe (fifo)"),
            (folder, "a folder"),
            (inbox_link, "a symbolic link"),
        ]
    ]
    assert link.is_symlink() and inbox_link.is_symlink() and fifo.exists() and folder.is_dir()
    assert _inbox_folders(setup) == {"inbox": ["in_inbox.csv"], "processed": [], "quarantine": []}
    assert all("Secret Marker" not in outcome.message for outcome in outcomes)


def test_a_file_of_empty_lines_is_quarantined_not_loaded_as_zero_rows(setup, tmp_path):
    path = tmp_path / "empty_lines.csv"
    path.write_bytes(b"100,NEM12,200506081149,UNITEDDP,NEMMCO\n" + b"\n" * 100_000 + b"900\n")

    [outcome] = ingest_files(setup["defs"], setup["instance"], [path])

    assert not outcome.ok
    assert "empty_lines.csv, line 100002: file holds no interval data" in outcome.message
    quarantined = setup["inbox"].parent / "quarantine" / "empty_lines.csv"
    assert outcome.message.endswith(f"; moved to {quarantined}")
    assert _inbox_folders(setup) == {
        "inbox": [],
        "processed": [],
        "quarantine": ["empty_lines.csv", "empty_lines.csv.report.json"],
    }


def test_a_zip_bomb_in_the_inbox_is_quarantined_with_its_report_fast(setup, pg_settings):
    setup["inbox"].mkdir(parents=True)
    bomb = nem12_blank_lines_bomb(setup["inbox"] / "bomb.zip")
    cursor = tick(setup, None).cursor
    [request] = tick(setup, cursor).run_requests

    started = time.perf_counter()
    result = run(setup, request)

    assert not result.success and time.perf_counter() - started < 30
    quarantined = setup["inbox"].parent / "quarantine" / "bomb.zip"
    report = json.loads(quarantined.with_name("bomb.zip.report.json").read_text())
    [problem] = report["problems"]
    assert problem["line"] == 0 and problem["record"] == ""
    assert problem["reason"].startswith(f"zip member '{NEM12_MEMBER}': compression ratio 1,029:1")
    assert "ENERGY_ASSETS_MAX_COMPRESSION_RATIO" in problem["reason"]
    assert not bomb.exists()
    assert _inbox_folders(setup) == {
        "inbox": [],
        "processed": [],
        "quarantine": ["bomb.zip", "bomb.zip.report.json"],
    }
    sha = request.run_config["ops"]["meters__meter_readings"]["config"]["sha256"]
    with connect(pg_settings) as conn:
        assert ledger.lookup(conn, [sha])[sha].status == "quarantined"
