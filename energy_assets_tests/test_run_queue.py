"""The run queue and the multiprocess executor, as `docs/deployment.md` configures them.

- The queue: an instance with `QueuedRunCoordinator`, `max_concurrent_runs` and the tag concurrency limits
  of the deployment guide; Dagster's own `QueuedRunCoordinatorDaemon` dequeues (one iteration per call, a
  mocked launcher records what it launched). Runs of different sources start together; a second run for a
  partition that is already running waits until the first one ends.
- The executor: a small asset graph (not the platform) runs under `dg.multiprocess_executor`, one process
  per step: two independent steps run at the same time, and two steps in the `postgres_loads` pool with a
  limit of 1 never overlap.

Both use Dagster's test helpers (`dagster._core.test_utils`, private but used by Dagster's own examples).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.test_utils import create_run_for_test, create_test_daemon_workspace_context
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

# The run queue of docs/deployment.md (dagster.yaml, `concurrency.runs`), with a smaller run limit.
RUN_QUEUE = {
    "max_concurrent_runs": 4,
    "tag_concurrency_limits": [
        {"key": "energy_assets/source", "value": {"applyLimitPerUniqueValue": True}, "limit": 2},
        {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
    ],
}
POOL = "postgres_loads"
EVENTS_DIR = "ENERGY_ASSETS_RUN_QUEUE_TEST_DIR"


@pytest.fixture
def queued_instance() -> Iterator[dg.DagsterInstance]:
    overrides = {
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"},
        "run_launcher": {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"},
        "concurrency": {"runs": RUN_QUEUE},
    }
    with dg.instance_for_test(overrides=overrides) as instance:
        yield instance


def queue_run(instance: dg.DagsterInstance, source: str, partition: str | None) -> DagsterRun:
    tags = {"energy_assets/source": source}
    if partition:
        tags["dagster/partition"] = partition
    job_name = f"{source}_job"
    origin = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(
            RegisteredCodeLocationOrigin("energy_assets"), "__repository__"
        ),
        job_name=job_name,
    )
    return create_run_for_test(
        instance, job_name=job_name, status=DagsterRunStatus.QUEUED, tags=tags, remote_job_origin=origin
    )


def finish(instance: dg.DagsterInstance, run: DagsterRun) -> None:
    instance.report_dagster_event(
        DagsterEvent(event_type_value=DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name),
        run_id=run.run_id,
    )


def test_sources_run_in_parallel_and_one_partition_runs_once_at_a_time(
    queued_instance: dg.DagsterInstance,
) -> None:
    instance = queued_instance
    day1 = queue_run(instance, "energy_charts", "2025-01-01")
    day1_again = queue_run(instance, "energy_charts", "2025-01-01")
    day2 = queue_run(instance, "energy_charts", "2025-01-02")
    electricity = queue_run(instance, "buildings", "electricity")
    nem12_file = queue_run(instance, "meters", None)
    day3 = queue_run(instance, "energy_charts", "2025-01-03")
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)

    def launched() -> list[str]:
        return [run.run_id for run in instance.run_launcher.queue()]

    def status(run: DagsterRun) -> DagsterRunStatus:
        return instance.get_run_by_id(run.run_id).status

    with create_test_daemon_workspace_context(EmptyWorkspaceTarget(), instance) as workspace:
        list(daemon.run_iteration(workspace))
        # Three sources at once; the same day waits; a third Energy-Charts run exceeds its source's 2.
        assert launched() == [day1.run_id, day2.run_id, electricity.run_id, nem12_file.run_id]
        assert status(day1_again) == DagsterRunStatus.QUEUED
        assert status(day3) == DagsterRunStatus.QUEUED

        list(daemon.run_iteration(workspace))  # nothing finished: nothing more starts
        assert len(launched()) == 4

        finish(instance, day1)
        list(daemon.run_iteration(workspace))
        assert launched()[4:] == [day1_again.run_id]  # the day is free again; it goes before day 3
        assert status(day3) == DagsterRunStatus.QUEUED

        finish(instance, day2)
        list(daemon.run_iteration(workspace))
        assert launched()[5:] == [day3.run_id]


# ------------------------------------------------------------------ the multiprocess executor


def _record(name: str, event: str) -> None:
    folder = Path(os.environ[EVENTS_DIR])
    (folder / f"{name}.{event}").write_text(f"{time.time()} {os.getpid()}")


def _wait_for(path: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name} never appeared: the other step did not run at the same time")
        time.sleep(0.05)


def _meeting_step(name: str, other: str) -> dg.AssetsDefinition:
    @dg.asset(name=name)
    def meeting() -> None:
        # Each step waits for the other one to have started: this only ends if both run at once.
        _record(name, "start")
        _wait_for(Path(os.environ[EVENTS_DIR]) / f"{other}.start")
        _record(name, "end")

    return meeting


def _pool_step(name: str) -> dg.AssetsDefinition:
    @dg.asset(name=name, deps=["fetch_a", "fetch_b"], pool=POOL)
    def load() -> None:
        _record(name, "start")
        time.sleep(0.5)
        _record(name, "end")

    return load


small_graph_job = dg.define_asset_job(
    "small_graph_job", selection=dg.AssetSelection.all(), executor_def=dg.multiprocess_executor
)


def small_graph_job_def() -> dg.JobDefinition:
    """Module level, so the executor's step processes can rebuild the job (`dg.reconstructable`)."""
    defs = dg.Definitions(
        assets=[
            _meeting_step("fetch_a", "fetch_b"),
            _meeting_step("fetch_b", "fetch_a"),
            _pool_step("load_a"),
            _pool_step("load_b"),
        ],
        jobs=[small_graph_job],
    )
    return defs.resolve_job_def("small_graph_job")


def _interval(folder: Path, name: str) -> tuple[float, float, int]:
    start, pid = (folder / f"{name}.start").read_text().split()
    end = (folder / f"{name}.end").read_text().split()[0]
    return float(start), float(end), int(pid)


def test_multiprocess_executor_runs_steps_in_parallel_and_respects_the_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(EVENTS_DIR, str(tmp_path))
    overrides: dict[str, Any] = {"concurrency": {"pools": {"default_limit": 1, "granularity": "op"}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        result = dg.execute_job(
            dg.reconstructable(small_graph_job_def),
            instance=instance,
            run_config={"execution": {"config": {"max_concurrent": 2}}},
        )
        assert result.success
        assert instance.event_log_storage.get_concurrency_info(POOL).slot_count == 1
    fetch_a, fetch_b = _interval(tmp_path, "fetch_a"), _interval(tmp_path, "fetch_b")
    load_a, load_b = _interval(tmp_path, "load_a"), _interval(tmp_path, "load_b")
    pids = {fetch_a[2], fetch_b[2], load_a[2], load_b[2]}
    assert len(pids) == 4 and os.getpid() not in pids  # one process per step
    assert fetch_a[0] < fetch_b[1] and fetch_b[0] < fetch_a[1]  # the two fetches overlapped
    first, second = sorted([load_a, load_b])
    assert first[1] <= second[0]  # the pool let one load run at a time
