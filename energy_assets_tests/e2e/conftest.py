"""End-to-end fixtures: the real `dagster-webserver` and `dagster-daemon` on loopback, driven over GraphQL.

One pair of processes serves the whole `e2e` package (package scope): both get the environment that
`energy-assets dagster env` prints for the session's data home, so the instance storage (runs, events,
schedules) and the data live in the session's managed PostgreSQL cluster, over verify-full TLS. Runs are
queued by the webserver and launched by the daemon, exactly as in production; `ENERGY_ASSETS_SOURCE=sample`
keeps them offline.

Startup waits for `/server_info`, the code location and the daemon heartbeats; teardown ends both process
groups (their code servers and run workers included). Their output goes to files under the package's tmp
folder, and a failing test shows the tail of both logs.
"""

from __future__ import annotations

import base64
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet

from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.settings import DataHome
from energy_assets.sources.energy_charts.local_days import local_day_window
from energy_assets.sources.meters.settings import SAMPLE_DIR as METERS_SAMPLE_DIR
from energy_assets_tests.sources.energy_charts_server import EnergyChartsTestServer, Scripted

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
LOCATION = "energy_assets"
REPOSITORY = "__repository__"
DAILY_JOB = "energy_charts_daily_job"
PARTITION_SET = f"{DAILY_JOB}_partition_set"

STARTUP_TIMEOUT_S = 240.0
RUN_TIMEOUT_S = 300.0
POLL_INTERVAL_S = 1.0
REQUEST_TIMEOUT_S = 60.0
LOG_TAIL_LINES = 60
# The daemons a queued run, a backfill and a sensor tick need.
REQUIRED_DAEMONS = ("SENSOR", "BACKFILL", "QUEUED_RUN_COORDINATOR")
TERMINAL_RUN_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
TERMINAL_BACKFILL_STATUSES = frozenset(
    {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
)

SINGLE_DAY = "2023-12-31"
BACKFILL_DAYS = ("2025-09-30", "2025-10-01")
# Both daily multi-assets whole (they cannot be subset) and the price mart.
BACKFILL_ASSETS = (
    ("raw", "energy_charts", "price"),
    ("energy_charts", "day_ahead_price"),
    ("raw", "energy_charts", "public_power"),
    ("energy_charts", "public_power"),
    ("energy_charts", "public_power_share"),
    ("marts", "daily_price_analysis"),
)
# One process per run (not one per step): the same code, far less start-up time on two cores. Step retries
# (policy.NETWORK_RETRY: one retry after 5 s) are off, so a broken run fails at once.
RUN_EXECUTION = {"execution": {"config": {"in_process": {"retries": {"disabled": {}}}}}}
METER_SAMPLE = METERS_SAMPLE_DIR / "NEM12_DEMO0001_MDPDEMO_RETDEMO.csv"

# ------------------------------------------------------------------------------------------- GraphQL
LOCATION_STATUS_QUERY = """
query LocationStatus {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
        }
      }
    }
  }
}
"""

DAEMON_HEALTH_QUERY = """
query DaemonHealth {
  instance { daemonHealth { allDaemonStatuses { daemonType healthy } } }
}
"""

# What the UI's "Join the Dagster community" dialog calls on Skip: screenshots show the page, not the dialog.
SET_NUX_SEEN_MUTATION = "mutation SetNuxSeen { setNuxSeen }"

LAUNCH_RUN_MUTATION = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message }
    ... on Error { message }
  }
}
"""

LAUNCH_BACKFILL_MUTATION = """
mutation LaunchBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PartitionKeysNotFoundError { message partitionKeys }
    ... on PythonError { message }
    ... on Error { message }
  }
}
"""

TERMINATE_RUN_MUTATION = """
mutation TerminateRun($runId: String!) {
  terminateRun(runId: $runId) {
    __typename
    ... on Error { message }
  }
}
"""

RUN_QUERY = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      runId
      status
      jobName
      tags { key value }
    }
  }
}
"""

BACKFILL_QUERY = """
query Backfill($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      status
      runs(limit: 20) { runId status tags { key value } }
    }
  }
}
"""

RUNS_WITH_TAG_QUERY = """
query RunsWithTag($jobName: String!, $tagKey: String!, $tagValue: String!) {
  runsOrError(filter: {pipelineName: $jobName, tags: [{key: $tagKey, value: $tagValue}]}) {
    __typename
    ... on Runs { results { runId status } }
  }
}
"""


class GraphQLError(AssertionError):
    """The webserver answered a GraphQL request with errors."""


@dataclass
class DagsterUI:
    """The running webserver and daemon: GraphQL helpers and where their logs are."""

    base_url: str
    env: Mapping[str, str]
    logs: dict[str, Path]
    inbox: Path
    inbox_file: Path
    nmi_prefix: str
    file_source: str = ""
    file_source_file: Path | None = None
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    # -- plumbing
    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = requests.post(
            f"{self.base_url}/graphql",
            json={"query": query, "variables": dict(variables or {})},
            timeout=REQUEST_TIMEOUT_S,
        )
        body = response.json()
        # A PythonError member of a result union comes with HTTP 500 and the data: that is an answer.
        if body.get("errors") or not body.get("data"):
            raise GraphQLError(f"GraphQL HTTP {response.status_code}: {body.get('errors') or body}")
        return body["data"]

    def log_tails(self, lines: int = LOG_TAIL_LINES) -> str:
        parts = []
        for name, path in self.logs.items():
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            parts.append(f"----- {name} ({path}), last {lines} lines -----")
            parts.extend(text[-lines:])
        return "\n".join(parts)

    def wait_for(self, what: str, probe: Callable[[], Any], timeout_s: float) -> Any:
        """Poll `probe` until it returns something truthy; fail with the logs' tails after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    pytest.fail(
                        f"{name} exited with {process.returncode} while waiting for {what}.\n{self.log_tails()}"
                    )
            try:
                result = probe()
                if result:
                    return result
            except (requests.RequestException, GraphQLError, ValueError) as error:
                last_error = error
            time.sleep(POLL_INTERVAL_S)
        pytest.fail(
            f"Timed out after {timeout_s:.0f} s waiting for {what} (last error: {last_error}).\n{self.log_tails()}"
        )

    # -- runs
    def launch_run(
        self,
        partition_key: str,
        *,
        run_config: Mapping[str, Any] | None = None,
        job_name: str = DAILY_JOB,
    ) -> dict[str, Any]:
        """`launchRun` of a partition of a job; returns the `launchRun` answer (its `__typename` says how it went)."""
        params = {
            "selector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": REPOSITORY,
                "jobName": job_name,
            },
            "runConfigData": dict(run_config if run_config is not None else RUN_EXECUTION),
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition_key}]},
        }
        return self.graphql(LAUNCH_RUN_MUTATION, {"executionParams": params})["launchRun"]

    def launch_backfill(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return self.graphql(LAUNCH_BACKFILL_MUTATION, {"backfillParams": dict(params)})[
            "launchPartitionBackfill"
        ]

    def run(self, run_id: str) -> dict[str, Any]:
        return self.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]

    def wait_for_run(self, run_id: str, timeout_s: float = RUN_TIMEOUT_S) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            run = self.run(run_id)
            return run if run.get("status") in TERMINAL_RUN_STATUSES else None

        return self.wait_for(f"run {run_id} to finish", finished, timeout_s)

    def wait_for_backfill(self, backfill_id: str, timeout_s: float = RUN_TIMEOUT_S) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            backfill = self.graphql(BACKFILL_QUERY, {"backfillId": backfill_id})["partitionBackfillOrError"]
            return backfill if backfill.get("status") in TERMINAL_BACKFILL_STATUSES else None

        return self.wait_for(f"backfill {backfill_id} to finish", finished, timeout_s)

    def runs_with_tag(self, job_name: str, key: str, value: str) -> list[dict[str, Any]]:
        answer = self.graphql(RUNS_WITH_TAG_QUERY, {"jobName": job_name, "tagKey": key, "tagValue": value})
        return answer["runsOrError"].get("results", [])

    def terminate(self, run_id: str) -> None:
        self.graphql(TERMINATE_RUN_MUTATION, {"runId": run_id})


def tags_of(run: Mapping[str, Any]) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in run.get("tags", [])}


# ------------------------------------------------------------------------------------------ processes
def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def platform_environment(data_home: DataHome, inbox: Path) -> dict[str, str]:
    """This environment without libpq/Dagster/project settings, plus what `energy-assets dagster env` prints."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PG", "DAGSTER_", "ENERGY_ASSETS_")) and key != "ENERGY_PG_URL"
    }
    env["ENERGY_ASSETS_HOME"] = str(data_home.root)
    printed = subprocess.run(
        [str(VENV_BIN / "energy-assets"), "dagster", "env"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for line in printed.splitlines():
        key, value = shlex.split(line)[1].split("=", 1)  # "export KEY=value"
        env[key] = value
    env["ENERGY_ASSETS_SOURCE"] = "sample"
    env["ENERGY_ASSETS_INBOX"] = str(inbox)
    return env


def start_process(command: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen:
    """A child in its own process group (so teardown reaches its code server and run workers)."""
    with log.open("ab") as output:
        return subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process_group(process: subprocess.Popen, grace_s: float = 30.0) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    # Children (code server, run workers) may outlive the leader: end whatever is left of the group.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(10)


def location_loaded(ui: DagsterUI) -> bool:
    workspace = ui.graphql(LOCATION_STATUS_QUERY)["workspaceOrError"]
    entries = {entry["name"]: entry for entry in workspace.get("locationEntries", [])}
    entry = entries.get(LOCATION)
    if entry is None or entry["loadStatus"] != "LOADED":
        return False
    location = entry["locationOrLoadError"]
    if location["__typename"] != "RepositoryLocation":
        pytest.fail(f"Code location {LOCATION} failed to load: {location.get('message')}\n{ui.log_tails()}")
    return True


def daemons_healthy(ui: DagsterUI) -> bool:
    statuses = ui.graphql(DAEMON_HEALTH_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
    healthy = {status["daemonType"] for status in statuses if status["healthy"]}
    return all(daemon in healthy for daemon in REQUIRED_DAEMONS)


# A user's own file: EV charging sessions with a day-first date and a local time in Europe/London.
SESSIONS_CSV = (
    "Session ID,Customer Email,Station,Start Date,Start Time,Energy (kWh)\n"
    "S1,alice@example.org,A1,06/09/2018,08:33,12.5\n"
    "S2,bob@example.org,A2,13/09/2018,23:05,7.25\n"
    "S3,alice@example.org,A1,01/10/2018,10:00,3.0\n"
)


def declare_file_source(env: Mapping[str, str], sources_dir: Path, sample: Path, name: str) -> Path:
    """`energy-assets source add` from a sample, as an operator would; returns the source's inbox."""
    sample.write_text(SESSIONS_CSV)
    added = subprocess.run(
        [
            str(VENV_BIN / "energy-assets"),
            "source",
            "add",
            name,
            "--sample",
            str(sample),
            "--time",
            "Start Date+Start Time",
            "--timezone",
            "Europe/London",
            "--key",
            "session_id",
            "--sensitive",
            "Customer Email",
        ],
        env={**env, "ENERGY_ASSETS_SOURCES_DIR": str(sources_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    return Path(env["ENERGY_ASSETS_HOME"]) / "inbox" / name


def drop_meter_file(inbox: Path, prefix: str) -> Path:
    """The first sample NEM12 file with NMIs of this run's own (the meter tables are shared by the session)."""
    inbox.mkdir(parents=True, exist_ok=True)
    target = inbox / f"NEM12_{prefix}_E2E.csv"
    target.write_text(METER_SAMPLE.read_text().replace("QDEMO", prefix))
    return target


@pytest.fixture(scope="package")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="package")
def dagster_ui(managed_cluster: ManagedCluster, data_home: DataHome, e2e_dir: Path) -> Iterator[DagsterUI]:
    """`dagster-webserver` and `dagster-daemon run` on the session's cluster and data home, ready for runs."""
    inbox = e2e_dir / "inbox"
    prefix = f"E{uuid.uuid4().hex[:4].upper()}"
    # Dropped before the daemon starts: the sensor needs the file unchanged over two ticks 30 s apart,
    # and those ticks run while the Energy-Charts runs do.
    inbox_file = drop_meter_file(inbox, prefix)
    env = platform_environment(data_home, inbox)
    # A source declared from a sample with `source add`, and one of its files dropped into its inbox.
    file_source = f"ev_e2e_{prefix.lower()}"
    env["ENERGY_ASSETS_SOURCES_DIR"] = str(e2e_dir / "sources")
    # Keys for its sensitive column (the same key set as protected NMIs, which stay off here).
    env["ENERGY_METERS_NMI_HMAC_KEY"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
    env["ENERGY_METERS_NMI_FERNET_KEYS"] = Fernet.generate_key().decode()
    file_inbox = declare_file_source(env, e2e_dir / "sources", e2e_dir / "sessions_sample.csv", file_source)
    file_inbox.mkdir(parents=True, exist_ok=True)
    file_source_file = file_inbox / "sessions_2018_09.csv"
    file_source_file.write_text(SESSIONS_CSV)
    port = free_loopback_port()
    ui = DagsterUI(
        base_url=f"http://127.0.0.1:{port}",
        env=env,
        logs={"dagster-webserver": e2e_dir / "webserver.log", "dagster-daemon": e2e_dir / "daemon.log"},
        inbox=inbox,
        inbox_file=inbox_file,
        nmi_prefix=prefix,
        file_source=file_source,
        file_source_file=file_source_file,
    )
    workspace = ["-w", str(REPO_ROOT / "workspace.yaml")]
    try:
        ui.processes["dagster-webserver"] = start_process(
            [str(VENV_BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), *workspace],
            env,
            ui.logs["dagster-webserver"],
        )
        ui.processes["dagster-daemon"] = start_process(
            [str(VENV_BIN / "dagster-daemon"), "run", *workspace], env, ui.logs["dagster-daemon"]
        )
        ui.wait_for(
            "/server_info",
            lambda: requests.get(f"{ui.base_url}/server_info", timeout=5).ok,
            STARTUP_TIMEOUT_S,
        )
        ui.wait_for(f"code location {LOCATION}", lambda: location_loaded(ui), STARTUP_TIMEOUT_S)
        ui.wait_for("daemon heartbeats", lambda: daemons_healthy(ui), STARTUP_TIMEOUT_S)
        ui.graphql(SET_NUX_SEEN_MUTATION)
        print(f"\ndagster-webserver at {ui.base_url}; logs: {', '.join(map(str, ui.logs.values()))}")
        yield ui
    finally:
        # The daemon first, so nothing new is launched while the webserver goes.
        for name in ("dagster-daemon", "dagster-webserver"):
            if name in ui.processes:
                stop_process_group(ui.processes[name])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failed test that used the servers shows the tail of their logs."""
    report = yield
    ui = getattr(item, "funcargs", {}).get("dagster_ui")
    if report.failed and isinstance(ui, DagsterUI):
        report.sections.append(("dagster-webserver and dagster-daemon logs", ui.log_tails()))
    return report


# --------------------------------------------------------------------------- runs shared by the tests
@dataclass(frozen=True)
class SampleMaterializations:
    """A one-partition run and a two-day backfill, launched over GraphQL and finished."""

    partition_run: dict[str, Any]
    backfill_id: str
    backfill: dict[str, Any]


@pytest.fixture(scope="package")
def sample_materializations(dagster_ui: DagsterUI) -> SampleMaterializations:
    launched = dagster_ui.launch_run(SINGLE_DAY)
    assert launched["__typename"] == "LaunchRunSuccess", launched
    backfill = dagster_ui.launch_backfill(
        {
            "partitionNames": list(BACKFILL_DAYS),
            "assetSelection": [{"path": list(path)} for path in BACKFILL_ASSETS],
            "runConfigData": RUN_EXECUTION,
        }
    )
    assert backfill["__typename"] == "LaunchBackfillSuccess", backfill
    # Both are queued at once; the daemon runs them side by side (max_concurrent_runs: 2).
    run = dagster_ui.wait_for_run(launched["run"]["runId"])
    finished_backfill = dagster_ui.wait_for_backfill(backfill["backfillId"])
    return SampleMaterializations(run, backfill["backfillId"], finished_backfill)


@dataclass(frozen=True)
class FailingSourceRun:
    """A run of an already loaded day against an API that answers HTTP 500 every time."""

    run: dict[str, Any]
    requests_per_endpoint: dict[str, int]
    prices_before: list[tuple]
    prices_after: list[tuple]


SERVER_ERROR_DETAIL = "upstream database unavailable"
CLIENT_RETRIES = 2


def prices_of_day(settings: PostgresSettings, day: str) -> list[tuple]:
    window = local_day_window(date.fromisoformat(day))
    with connect(settings) as conn:
        return conn.execute(
            "SELECT interval_start, interval_minutes, price_eur_per_mwh FROM energy_charts.day_ahead_price"
            " WHERE bidding_zone = 'DE-LU' AND interval_start >= %s AND interval_start < %s ORDER BY interval_start",
            (window.start_utc, window.end_utc),
        ).fetchall()


@pytest.fixture(scope="package")
def failing_source_run(
    dagster_ui: DagsterUI, sample_materializations: SampleMaterializations, pg_settings: PostgresSettings
) -> Iterator[FailingSourceRun]:
    """SINGLE_DAY again, from a live API that fails: the client retries, then the step fails (no step retries)."""
    server = EnergyChartsTestServer().start()
    try:
        answer = Scripted(500, {"detail": SERVER_ERROR_DETAIL})
        for endpoint in ("price", "public_power"):
            server.script(endpoint, [answer] * 10)  # more than the client will ask for
        prices_before = prices_of_day(pg_settings, SINGLE_DAY)
        run_config = {
            **RUN_EXECUTION,
            "resources": {
                "energy_charts": {
                    "config": {
                        "source": "live",
                        "base_url": server.base_url,
                        "max_retries": CLIENT_RETRIES,
                        "backoff_factor_s": 0.05,
                        "min_seconds_between_requests": 0.0,
                    }
                }
            },
        }
        launched = dagster_ui.launch_run(SINGLE_DAY, run_config=run_config)
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run = dagster_ui.wait_for_run(launched["run"]["runId"])
        counts = {endpoint: len(server.requests_to(endpoint)) for endpoint in ("price", "public_power")}
        yield FailingSourceRun(run, counts, prices_before, prices_of_day(pg_settings, SINGLE_DAY))
    finally:
        server.stop()
