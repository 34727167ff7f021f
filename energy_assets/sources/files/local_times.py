"""Local wall-clock times in an IANA zone -> UTC instants, refusing what a DST change makes unclear. No Dagster.

A local time on the day clocks go back occurs twice (ambiguous); one on the day they go forward never
occurs (nonexistent). Both are refused with their rows unless a policy is declared:

- `earlier` / `later`: the earlier or later of the two readings of the local time (the zone's offset
  before and after the change). For an ambiguous time these are its two real instants; for a
  nonexistent one, the same time read with the summer offset (earlier) or the winter one (later);
- an abbreviation column (`BST`/`GMT`, `MDT`/`MST`): the reading whose abbreviation the row names;
  a label that contradicts the zone's rules on that date is an error, never a silent shift.

The common path is vectorized (pyarrow `assume_timezone` twice: rows where the two policies agree are
clear); only the unclear rows are looked at one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

UTC_US = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class UnclearTime:
    """A row whose local time a DST change makes unclear, or whose abbreviation contradicts the zone."""

    row: int
    local: datetime
    reason: str


class LocalTimeError(ValueError):
    """Local times that cannot be placed; `problems` lists the rows (0-based in the converted array)."""

    def __init__(self, problems: list[UnclearTime]) -> None:
        self.problems = problems
        super().__init__(problems[0].reason if problems else "unclear local times")


def to_utc(
    local: pa.Array,
    zone_name: str,
    *,
    policy: str = "refuse",
    abbreviations: pa.Array | None = None,
) -> pa.Array:
    """Naive timestamps (local wall clock in `zone_name`) as UTC timestamps (`timestamp[us, UTC]`).

    Raises `LocalTimeError` listing every unclear row when the policy does not settle it.
    """
    local = local.cast(pa.timestamp("us"))
    earliest = pc.assume_timezone(local, timezone=zone_name, ambiguous="earliest", nonexistent="earliest")
    latest = pc.assume_timezone(local, timezone=zone_name, ambiguous="latest", nonexistent="latest")
    unclear = pc.fill_null(pc.not_equal(earliest, latest), False)
    result = earliest.cast(UTC_US)
    rows = pc.indices_nonzero(unclear).to_pylist()
    zone = ZoneInfo(zone_name)
    if abbreviations is not None:
        rows = sorted(set(rows) | set(_abbreviated_rows(abbreviations)))
    if not rows:
        return result
    chosen: dict[int, datetime] = {}
    problems: list[UnclearTime] = []
    walls = local.take(pa.array(rows, pa.int64())).to_pylist()
    for row, wall in zip(rows, walls, strict=True):
        if wall is None:
            continue
        readings = _readings(wall, zone)
        label = abbreviations[row].as_py() if abbreviations is not None else None
        if label:
            picked = [instant for instant, name in readings if name == label.strip()]
            if not picked:
                names = " or ".join(sorted({name for _, name in readings}))
                problems.append(
                    UnclearTime(
                        row,
                        wall,
                        f"zone abbreviation {label!r} contradicts {zone_name} on {wall:%Y-%m-%d %H:%M} (the zone says {names})",
                    )
                )
                continue
            chosen[row] = picked[0]
        elif len({instant for instant, _ in readings}) == 1:
            continue
        elif policy in ("earlier", "later"):
            instants = sorted(instant for instant, _ in readings)
            chosen[row] = instants[0] if policy == "earlier" else instants[-1]
        else:
            kind = (
                "occurs twice (clocks go back)"
                if _is_ambiguous(wall, zone)
                else "does not exist (clocks go forward)"
            )
            problems.append(
                UnclearTime(
                    row,
                    wall,
                    f"local time {wall:%Y-%m-%d %H:%M} {kind} in {zone_name}; declare ambiguous_times: earlier or later,"
                    " or a timezone_abbreviation_column",
                )
            )
    if problems:
        raise LocalTimeError(problems)
    if not chosen:
        return result
    positions = list(chosen)
    replacement = pa.array([chosen[row] for row in positions], UTC_US)
    mask = pc.is_in(pa.array(range(len(result)), pa.int64()), value_set=pa.array(positions, pa.int64()))
    return pc.replace_with_mask(result, mask, replacement)


def _readings(wall: datetime, zone: ZoneInfo) -> list[tuple[datetime, str]]:
    """The two readings of a wall-clock time (fold 0 and 1) as (UTC instant, zone abbreviation)."""
    out = []
    for fold in (0, 1):
        aware = wall.replace(tzinfo=zone, fold=fold)
        out.append((aware.astimezone(UTC), aware.tzname() or ""))
    return out


def _is_ambiguous(wall: datetime, zone: ZoneInfo) -> bool:
    """True if the wall time occurs twice; False if it falls in a gap."""
    back = [
        wall.replace(tzinfo=zone, fold=fold).astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        for fold in (0, 1)
    ]
    return all(value == wall for value in back)


def _abbreviated_rows(abbreviations: pa.Array) -> list[int]:
    """Rows with an abbreviation to check (all that have one: a label must agree even on a clear day)."""
    return pc.indices_nonzero(pc.is_valid(abbreviations)).to_pylist()
