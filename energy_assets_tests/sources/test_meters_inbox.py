"""The file-drop helpers: which files are candidates, when they are stable, their identity, and the moves."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from energy_assets.files import NotARegularFileError
from energy_assets.sources.meters.errors import Nem12Error
from energy_assets.sources.meters.inbox import (
    FileObservation,
    InboxLayout,
    QuarantineReport,
    decode_observations,
    encode_observations,
    identify,
    is_candidate_name,
    list_candidates,
    move_to_processed,
    quarantine,
    run_key,
    sha256_of_file,
    split_new_and_known,
    stable_files,
)
from energy_assets.sources.meters.nem12 import read_nem12_table

FIXTURES = Path(__file__).parents[1] / "fixtures" / "nem12"


@pytest.fixture
def layout(tmp_path: Path) -> InboxLayout:
    layout = InboxLayout(tmp_path / "inbox")
    layout.ensure()
    return layout


def drop(
    layout: InboxLayout, name: str, content: bytes = b"100,NEM12\n900\n", mtime_ns: int | None = None
) -> Path:
    path = layout.inbox / name
    path.write_bytes(content)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_layout_puts_processed_and_quarantine_beside_the_inbox(tmp_path: Path) -> None:
    layout = InboxLayout(tmp_path / "inbox")
    assert (layout.processed, layout.quarantine) == (tmp_path / "processed", tmp_path / "quarantine")


@pytest.mark.parametrize(
    ("name", "candidate"),
    [
        ("NEM12#0001#MDP#RET.csv", True),
        ("meter.zip", True),
        (".hidden.csv", False),
        ("~$open_in_excel.csv", False),
        ("upload.csv.part", False),
        ("upload.csv.tmp", False),
        ("download.crdownload", False),
        ("backup.csv~", False),
        ("bad.csv.report.json", False),
    ],
)
def test_hidden_and_temporary_names_are_ignored(name: str, candidate: bool) -> None:
    assert is_candidate_name(name) is candidate


def test_list_candidates_skips_folders_and_temporary_files(layout: InboxLayout) -> None:
    drop(layout, "b.csv", b"12345")
    drop(layout, "a.csv", b"1")
    drop(layout, ".a.csv.4f2a.tmp", b"half")
    (layout.inbox / "sub").mkdir()
    observed = list_candidates(layout.inbox)
    assert [(o.name, o.size) for o in observed] == [("a.csv", 1), ("b.csv", 5)]
    assert list_candidates(layout.inbox.parent / "missing") == []


def test_a_growing_file_is_not_stable_until_unchanged_for_one_tick(layout: InboxLayout) -> None:
    path = drop(layout, "growing.csv", b"100,NEM12", mtime_ns=1_000_000_000_000)
    stable, state = stable_files(list_candidates(layout.inbox), {})
    assert stable == []  # first sighting

    with path.open("ab") as file:
        file.write(b"\n200,...")
    os.utime(path, ns=(2_000_000_000_000, 2_000_000_000_000))
    stable, state = stable_files(list_candidates(layout.inbox), state)
    assert stable == []  # size and mtime changed since the last tick

    stable, state = stable_files(list_candidates(layout.inbox), state)
    assert [o.name for o in stable] == ["growing.csv"]
    assert state == {"growing.csv": FileObservation("growing.csv", 17, 2_000_000_000_000)}


def test_a_declared_number_of_ticks_must_see_the_file_unchanged(layout: InboxLayout) -> None:
    drop(layout, "slow.csv", b"100,NEM12\n900\n", mtime_ns=1_000_000_000_000)
    state: dict[str, FileObservation] = {}
    seen = []
    for _ in range(3):
        stable, state = stable_files(list_candidates(layout.inbox), state, ticks=3)
        seen.append([o.name for o in stable])
        state = decode_observations(encode_observations(state))  # through the cursor, as a sensor does
    assert seen == [[], [], ["slow.csv"]]
    assert encode_observations(state) == '{"slow.csv":[14,1000000000000,3]}'


def test_a_file_with_an_old_modification_time_is_picked_up(layout: InboxLayout) -> None:
    drop(layout, "old.csv", b"100,NEM12\n900\n", mtime_ns=946_684_800 * 10**9)  # 2000-01-01
    _, state = stable_files(list_candidates(layout.inbox), {})
    stable, _ = stable_files(list_candidates(layout.inbox), state)
    assert [o.name for o in stable] == ["old.csv"]


def test_an_empty_file_is_never_stable(layout: InboxLayout) -> None:
    drop(layout, "empty.csv", b"")
    _, state = stable_files(list_candidates(layout.inbox), {})
    assert stable_files(list_candidates(layout.inbox), state)[0] == []


def test_observations_round_trip_through_json() -> None:
    state = {"a.csv": FileObservation("a.csv", 10, 123), "b.zip": FileObservation("b.zip", 7, 456)}
    text = encode_observations(state)
    assert text == '{"a.csv":[10,123],"b.zip":[7,456]}'
    assert decode_observations(text) == state
    assert decode_observations(None) == {} and decode_observations("not json") == {}


def test_sha256_identifies_the_same_content_under_any_name(layout: InboxLayout) -> None:
    content = (FIXTURES / "nem12_30min_multiple_quality.csv").read_bytes()
    first = sha256_of_file(drop(layout, "first.csv", content))
    renamed = sha256_of_file(drop(layout, "NEM12#renamed.csv", content))
    other = sha256_of_file(drop(layout, "other.csv", content + b"\n"))
    assert first == renamed != other
    assert first == hashlib.sha256(content).hexdigest()
    assert sha256_of_file(drop(layout, "nothing.csv", b"")) == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_move_to_processed_renames_and_never_overwrites(layout: InboxLayout) -> None:
    sha = "ab" * 32
    moved = move_to_processed(layout, drop(layout, "day.csv", b"first"), sha)
    assert moved == layout.processed / "day.csv" and moved.read_bytes() == b"first"
    assert not (layout.inbox / "day.csv").exists()

    again = move_to_processed(layout, drop(layout, "day.csv", b"second"), "cd" * 32)
    assert again == layout.processed / f"{'cd' * 6}_day.csv"
    third = move_to_processed(layout, drop(layout, "day.csv", b"third"), "cd" * 32)
    assert third == layout.processed / f"{'cd' * 6}_day.csv.1"
    assert [p.read_bytes() for p in (moved, again, third)] == [b"first", b"second", b"third"]
    assert list(layout.inbox.iterdir()) == []


def test_quarantine_moves_the_file_and_writes_its_report(layout: InboxLayout) -> None:
    content = (FIXTURES / "invalid_value_count.csv").read_bytes()
    path = drop(layout, "invalid_value_count.csv", content)
    sha = sha256_of_file(path)
    with pytest.raises(Nem12Error) as caught:
        read_nem12_table(path)

    target, report_path = quarantine(
        layout, path, QuarantineReport.from_error(path.name, sha, len(content), caught.value)
    )

    assert target == layout.quarantine / "invalid_value_count.csv" and target.read_bytes() == content
    assert report_path == layout.quarantine / "invalid_value_count.csv.report.json"
    assert oct(report_path.stat().st_mode & 0o777) == "0o600"
    report = json.loads(report_path.read_text())
    assert report["file"] == "invalid_value_count.csv" and report["sha256"] == sha
    assert report["bytes"] == len(content)
    assert report["problems"] == [
        {
            "line": 4,
            "record": caught.value.record,
            "reason": "300 record has 47 interval values; IntervalLength 30 of the 200 record on line 2 needs 48",
        }
    ]
    assert not path.exists()
    assert list_candidates(layout.quarantine) == [
        FileObservation(target.name, len(content), target.stat().st_mtime_ns)
    ]  # the report is not a candidate file


def test_quarantine_report_for_a_problem_found_after_parsing(layout: InboxLayout) -> None:
    path = drop(layout, "audited.csv", b"x")
    target, report_path = quarantine(
        layout, path, QuarantineReport.from_reason("audited.csv", "00" * 32, 1, "rule interval_grid failed")
    )
    assert json.loads(report_path.read_text())["problems"] == [
        {"line": 0, "record": "", "reason": "rule interval_grid failed"}
    ]
    assert target.exists()


def test_the_same_file_dropped_twice_once_renamed_is_loaded_once(layout: InboxLayout) -> None:
    content = (FIXTURES / "nem12_15min_upper_case_units.csv").read_bytes()
    drop(layout, "a_first.csv", content)
    drop(layout, "b_renamed.csv", content)
    drop(layout, "c_other.csv", content + b"\n")
    _, state = stable_files(list_candidates(layout.inbox), {})
    stable, _ = stable_files(list_candidates(layout.inbox), state)
    files = identify(layout.inbox, stable)
    sha = hashlib.sha256(content).hexdigest()
    assert [(f.name, f.sha256 == sha) for f in files] == [
        ("a_first.csv", True),
        ("b_renamed.csv", True),
        ("c_other.csv", False),
    ]
    assert files[0].run_key == files[1].run_key == f"nem12-{sha}" == run_key(sha)

    to_load, known = split_new_and_known(files, {})
    assert [f.name for f in to_load] == ["a_first.csv", "c_other.csv"]
    assert [f.name for f in known] == ["b_renamed.csv"]

    # next tick: the first copy was processed; the same bytes dropped again under a third name are known
    drop(layout, "d_again.csv", content)
    statuses = {sha: "processed", files[2].sha256: "loading"}  # c_other: the process died mid-way
    to_load, known = split_new_and_known(
        identify(layout.inbox, stable + list_candidates(layout.inbox)[3:]), statuses
    )
    assert [f.name for f in to_load] == ["c_other.csv"]
    assert [f.name for f in known] == ["a_first.csv", "b_renamed.csv", "d_again.csv"]


def test_identify_skips_files_that_vanished(layout: InboxLayout) -> None:
    assert identify(layout.inbox, [FileObservation("gone.csv", 3, 1)]) == []


def test_links_and_fifos_in_the_inbox_are_never_candidates_nor_hashed(
    layout: InboxLayout, tmp_path: Path
) -> None:
    secret = tmp_path / "passwd"
    secret.write_bytes(b"root:x:0:0:Secret Marker:/root:/bin/bash\n")
    (layout.inbox / "x.csv").symlink_to(secret)
    os.mkfifo(layout.inbox / "pipe.csv")
    drop(layout, "real.csv", b"100,NEM12\n")
    assert [o.name for o in list_candidates(layout.inbox)] == ["real.csv"]
    with pytest.raises(NotARegularFileError, match="x.csv is a symbolic link"):
        sha256_of_file(layout.inbox / "x.csv")
    # A file swapped for a link between the listing and the hashing is skipped, not followed.
    listed = FileObservation("x.csv", secret.stat().st_size, 1)
    assert identify(layout.inbox, [listed]) == []
