"""Wall-clock time per step of a load, reported in `LoadResult.timings` (where did the seconds go)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class StepTimes(dict[str, float]):
    """Seconds per named step; a step timed twice adds up."""

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - started
