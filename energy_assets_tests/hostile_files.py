"""Hostile input for the file readers' tests: zip bombs, a fifo with a writer, a child that measures itself.

`nem12_blank_lines_bomb` is a 100 header, 400 MiB of empty lines and a 900 footer (about 400 kB zipped);
`bdg2_long_line_bomb` a BDG2 archive whose cleaned solar member is a header and one 400 MiB line of `1`; both
are streamed into the zip, never held in memory. `fifo_with_a_writer` makes a fifo that a background thread
feeds as soon as anything opens it for reading, so a reader that wrongly opens it gets data (and the test
fails) instead of hanging. `run_measured` runs a snippet in a fresh interpreter and reports how it ended,
its time and its peak RSS.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from energy_assets.sources.buildings.archive import METADATA_MEMBER, meter_member
from energy_assets.sources.buildings.sample_builder import TOP_FOLDER, metadata_csv

BOMB_MIB = 400
NEM12_HEADER = b"100,NEM12,200506081149,UNITEDDP,NEMMCO\n"
NEM12_MEMBER = "NEM12#BOMB#MDP#RET.csv"
SOLAR_MEMBER = meter_member("solar")
ROOT = Path(__file__).resolve().parents[1]


def _write_streamed(archive: zipfile.ZipFile, name: str, parts: Iterable[bytes]) -> None:
    info = zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with archive.open(info, "w") as member:
        for part in parts:
            member.write(part)


def _repeated(byte: bytes, mib: int) -> Iterable[bytes]:
    block = byte * (1 << 20)
    return (block for _ in range(mib))


def nem12_blank_lines_bomb(path: Path, mib: int = BOMB_MIB) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        _write_streamed(archive, NEM12_MEMBER, [NEM12_HEADER, *_repeated(b"\n", mib), b"900\n"])
    return path


def bdg2_long_line_bomb(path: Path, mib: int = BOMB_MIB) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{TOP_FOLDER}/{METADATA_MEMBER}", metadata_csv())
        header = b"timestamp,Panther_office_Hannah\r\n2016-01-01 00:00:00,"
        _write_streamed(archive, f"{TOP_FOLDER}/{SOLAR_MEMBER}", [header, *_repeated(b"1", mib), b"\r\n"])
    return path


def run_measured(snippet: str, env: Mapping[str, str] | None = None, timeout: float = 60) -> dict:
    """Run `snippet` in a child interpreter; returns `outcome` ("accepted" or "<error type>: <message>"),
    `seconds` (wall, the snippet only) and `peak_rss_mb` (the child's own peak resident set).

    The peak is the child's VmHWM: `getrusage`'s ru_maxrss survives exec on Linux, so it would report a
    large parent (the pytest process, at fork) instead of the child."""
    code = textwrap.dedent(
        """
        import json, time
        started = time.perf_counter()
        try:
        {body}
            outcome = "accepted"
        except Exception as exc:
            outcome = f"{{type(exc).__name__}}: {{exc}}"
        print(json.dumps({{
            "outcome": outcome,
            "seconds": time.perf_counter() - started,
            "peak_rss_mb": next(
                int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")
            ) / 1024,
        }}))
        """
    ).format(body=textwrap.indent(textwrap.dedent(snippet).strip(), "    "))
    child_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    return dict(result)


@contextlib.contextmanager
def fifo_with_a_writer(path: Path, data: bytes, seconds: float = 3.0) -> Iterator[Path]:
    """A fifo at `path`; for `seconds`, whoever opens it for reading is sent `data` (then end of file)."""
    os.mkfifo(path)
    stop = threading.Event()

    def feed() -> None:
        deadline = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while nobody reads
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    return
                time.sleep(0.02)
                continue
            with contextlib.suppress(OSError):  # the reader may have closed it already (broken pipe)
                os.set_blocking(fd, True)
                os.write(fd, data)
            os.close(fd)
            return

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        yield path
    finally:
        stop.set()
        writer.join()
