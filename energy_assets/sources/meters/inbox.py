"""The file-drop inbox, as pure functions: which files are ready, their identity, and where they go next.

Layout (folders are siblings, so a move is a rename on one filesystem):

    <parent>/inbox/        files are dropped here (write under a temporary or hidden name, then rename)
    <parent>/processed/    a file lands here only after its rows are committed
    <parent>/quarantine/   malformed files, each with `<name>.report.json` (line, record, reason)

A file is only ever renamed, never deleted or rewritten: until it is moved it stays in the inbox, so a
crash at any point leaves it there for the next tick, which is the whole recovery story. Identity is the
sha256 of the content, so the same bytes under another name are recognised. Readiness is decided by two
observations: a file whose size and modification time did not change between two ticks is stable; its
modification time is never compared with a clock, so an old file copied in with its old mtime is picked up.
Only regular files are candidates: a symbolic link, fifo or folder dropped in the inbox is never opened
(hashing refuses one swapped in after the listing too), and a move renames the link itself, not its target.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from energy_assets.files import NotARegularFileError, fsync_directory, open_regular_file, write_atomic
from energy_assets.sources.meters.errors import Nem12Error

PROCESSED_DIR = "processed"
QUARANTINE_DIR = "quarantine"
REPORT_SUFFIX = ".report.json"
# Names editors, browsers and copy tools give files still being written.
TEMPORARY_SUFFIXES = (
    ".tmp",
    ".temp",
    ".part",
    ".partial",
    ".crdownload",
    ".download",
    ".filepart",
    ".swp",
    "~",
)
TEMPORARY_PREFIXES = (".", "~$", "~")
_HASH_CHUNK = 1 << 20


class InboxMoveError(OSError):
    """A file could not be moved out of the inbox (other filesystem, permissions); it stays where it was."""


@dataclass(frozen=True)
class InboxLayout:
    """The inbox folder and its `processed/` and `quarantine/` siblings."""

    inbox: Path

    @property
    def processed(self) -> Path:
        return self.inbox.parent / PROCESSED_DIR

    @property
    def quarantine(self) -> Path:
        return self.inbox.parent / QUARANTINE_DIR

    def ensure(self) -> None:
        """Create the three folders (owner-only: meter data is personal data)."""
        for folder in (self.inbox, self.processed, self.quarantine):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)


@dataclass(frozen=True)
class FileObservation:
    """What one tick saw of a file: size and modification time (ns), nothing about its content."""

    name: str
    size: int
    mtime_ns: int
    # How many ticks in a row have seen this size and time (not part of what a tick saw, so not compared).
    seen: int = field(default=1, compare=False)

    def to_json(self) -> list[int]:
        return [self.size, self.mtime_ns] if self.seen == 1 else [self.size, self.mtime_ns, self.seen]


def is_candidate_name(name: str) -> bool:
    """False for hidden, temporary and report files (they are not meter files, or not finished yet)."""
    lower = name.lower()
    if lower.startswith(TEMPORARY_PREFIXES) or lower.endswith(TEMPORARY_SUFFIXES):
        return False
    return not lower.endswith(REPORT_SUFFIX)


def list_candidates(inbox: str | Path) -> list[FileObservation]:
    """Regular files directly in `inbox` with candidate names, sorted by name (sub-folders are ignored)."""
    observations = []
    try:
        entries = list(os.scandir(inbox))
    except FileNotFoundError:
        return []
    for entry in entries:
        if not is_candidate_name(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            stat = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # renamed away between listing and stat
            continue
        observations.append(FileObservation(entry.name, stat.st_size, stat.st_mtime_ns))
    return sorted(observations, key=lambda observation: observation.name)


def stable_files(
    current: Sequence[FileObservation], previous: Mapping[str, FileObservation], ticks: int = 2
) -> tuple[list[FileObservation], dict[str, FileObservation]]:
    """Files seen unchanged (size and mtime) by `ticks` ticks in a row; and the state for the next tick.

    Empty files are never stable: a producer that creates the file before writing it looks like that.
    """
    state = {}
    for observation in current:
        before = previous.get(observation.name)
        seen = before.seen + 1 if before == observation and before is not None else 1
        state[observation.name] = replace(observation, seen=seen)
    stable = [
        observation for observation in state.values() if observation.size > 0 and observation.seen >= ticks
    ]
    return stable, state


def encode_observations(observations: Mapping[str, FileObservation]) -> str:
    """The state of `stable_files` as compact JSON (`{"name": [size, mtime_ns(, ticks seen)]}`), e.g. for a
    sensor cursor."""
    return json.dumps(
        {name: obs.to_json() for name, obs in sorted(observations.items())}, separators=(",", ":")
    )


def decode_observations(text: str | None) -> dict[str, FileObservation]:
    """Inverse of `encode_observations`; an empty or unreadable state means "nothing seen yet"."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
        return {
            name: FileObservation(
                name, int(values[0]), int(values[1]), int(values[2]) if len(values) > 2 else 1
            )
            for name, values in raw.items()
        }
    except (ValueError, TypeError, AttributeError):
        return {}


def sha256_of_file(path: str | Path) -> str:
    """SHA-256 of the file's bytes, hex, read in 1 MiB chunks; a link or fifo raises `NotARegularFileError`."""
    digest = hashlib.sha256()
    with open_regular_file(path) as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class InboxFile:
    """A stable inbox file with its content hash: what a run loads."""

    path: Path
    size: int
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def run_key(self) -> str:
        return run_key(self.sha256)


# Statuses of `meters.ingested_files` after which a file's content needs no further work.
FINISHED_STATUSES = frozenset({"processed", "quarantined", "duplicate"})


def run_key(sha256: str) -> str:
    """The Dagster run key of a file's content: the same bytes under any name give the same key."""
    return f"nem12-{sha256}"


def identify(inbox: str | Path, stable: Sequence[FileObservation]) -> list[InboxFile]:
    """Hash the stable files (files that vanished meanwhile are skipped); sorted by name."""
    files = []
    for observation in stable:
        path = Path(inbox) / observation.name
        try:
            files.append(InboxFile(path, observation.size, sha256_of_file(path)))
        except (FileNotFoundError, NotARegularFileError):  # gone, or swapped for a link since the listing
            continue
    return sorted(files, key=lambda file: file.name)


def split_new_and_known(
    files: Sequence[InboxFile], statuses: Mapping[str, str]
) -> tuple[list[InboxFile], list[InboxFile]]:
    """(files to load, files whose content is already finished or is loaded by an earlier file of the tick).

    `statuses` maps sha256 -> status from `meters.ingested_files`. A content recorded but not finished
    (`seen`, `loading`: the process died mid-way) is loaded again; that is the crash recovery. Within one
    tick, the first name (sorted) of a content is loaded and the others count as known.
    """
    to_load: list[InboxFile] = []
    known: list[InboxFile] = []
    taken: set[str] = set()
    for file in files:
        if statuses.get(file.sha256) in FINISHED_STATUSES or file.sha256 in taken:
            known.append(file)
        else:
            taken.add(file.sha256)
            to_load.append(file)
    return to_load, known


def _free_target(folder: Path, name: str, sha256: str) -> Path:
    """`name`, else `<sha256[:12]>_<name>`, else that with `.1`, `.2`... : never an existing file."""
    candidates = [folder / name, folder / f"{sha256[:12]}_{name}"]
    for candidate in candidates:
        if not candidate.exists():
            return candidate
    counter = 1
    while True:
        candidate = folder / f"{sha256[:12]}_{name}.{counter}"
        if not candidate.exists():
            return candidate
        counter += 1


def move_without_overwrite(path: Path, folder: Path, sha256: str) -> Path:
    """Rename `path` into `folder` under a free name; returns the new path. Never deletes or overwrites.

    A hard link to the free name followed by unlinking the inbox name makes "target already exists" an
    error instead of a silent overwrite (plain rename would replace it); where links are not supported
    the rename is used. Both folders are fsynced, so the move survives a power cut.
    """
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    while True:
        target = _free_target(folder, path.name, sha256)
        try:
            os.link(path, target, follow_symlinks=False)  # a link is moved as a link, never its target
        except FileExistsError:
            continue  # another process took the name in between; pick the next one
        except OSError as exc:
            if exc.errno == errno.EXDEV:  # processed/ and quarantine/ must be on the inbox's filesystem
                raise InboxMoveError(
                    exc.errno, f"cannot move {path.name} to {folder}: not on the inbox's filesystem"
                ) from None
            try:
                os.rename(path, target)
            except OSError as rename_exc:
                raise InboxMoveError(
                    rename_exc.errno, f"cannot move {path.name} to {folder}: {rename_exc.strerror}"
                ) from None
            break
        else:
            os.unlink(path)
            break
    fsync_directory(folder)
    fsync_directory(path.parent)
    return target


def move_to_processed(layout: InboxLayout, path: str | Path, sha256: str) -> Path:
    """Move a file whose rows are committed to `processed/` (call only after the commit)."""
    return move_without_overwrite(Path(path), layout.processed, sha256)


@dataclass(frozen=True)
class QuarantineReport:
    """Why a file was quarantined: its identity and the problems found (line, record, reason)."""

    file_name: str
    sha256: str
    bytes: int
    problems: tuple[dict[str, Any], ...]
    quarantined_at: datetime

    @classmethod
    def from_error(cls, file_name: str, sha256: str, size: int, error: Nem12Error) -> QuarantineReport:
        return cls(file_name, sha256, size, (error.to_report(),), datetime.now(UTC))

    @classmethod
    def from_reason(
        cls, file_name: str, sha256: str, size: int, reason: str, line: int = 0
    ) -> QuarantineReport:
        """For problems found after parsing (e.g. an audit rule): no record to show."""
        return cls(
            file_name, sha256, size, ({"line": line, "record": "", "reason": reason},), datetime.now(UTC)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file_name,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "quarantined_at": self.quarantined_at.isoformat(),
            "problems": list(self.problems),
        }


def quarantine(layout: InboxLayout, path: str | Path, report: QuarantineReport) -> tuple[Path, Path]:
    """Move a file to `quarantine/` and write `<final name>.report.json` beside it; returns both paths.

    The report is written after the move: a crash in between leaves the file quarantined without its report
    (the durable record still holds the error), never a report for a file that is still in the inbox.
    """
    target = move_without_overwrite(Path(path), layout.quarantine, report.sha256)
    report_path = target.with_name(target.name + REPORT_SUFFIX)
    payload = json.dumps(report.to_json(), indent=2, sort_keys=True).encode("utf-8") + b"\n"
    write_atomic(report_path, payload, 0o600)
    return target, report_path
