"""Progress of long claim runs: one line now and then, never a flood.

A claim on FLUX.2-klein can take many minutes; pytest shows nothing until it ends. ``Progress``
gets every generated sample from the claim runner and writes at most one line per ``interval``
seconds (none at all while a run is quicker than that): the claim, samples done of its budget,
k/n at the last look with the decision those counts give so far, and the most time the claim
can still take (sequential stopping usually ends it sooner). The default interval is 10 s on a
terminal and 60 s in a CI log; ``--progress off`` silences it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mechinterp.stats.sequential import Tally


def _duration(seconds: float) -> str:
    """``95`` → ``1m35s``; ``4000`` → ``1h06m``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """Rate-limited progress lines for the claims one process runs (``update`` is the runner's
    ``on_progress`` callback; ``write`` prints one line)."""

    def __init__(self, write: Callable[[str], None], interval: float, *, prefix: str = "mechinterp",
                 total: int | None = None, clock: Callable[[], float] = time.monotonic):
        self.write = write
        self.interval = interval
        self.prefix = prefix
        self.total = total  # claim items this process will run, when known (no xdist)
        self.clock = clock
        self.finished = 0
        self._claim: str | None = None
        self._claim_start = 0.0
        self._last: float | None = None  # when the last line was written (or progress began)

    def update(self, claim, done: int, budget: int, k: int, n: int) -> None:
        """``done`` of ``budget`` samples of ``claim`` generated; ``k``/``n`` as of its last look."""
        now = self.clock()
        if self._last is None:
            self._last = now
        if claim.id != self._claim or done == 1:  # a new claim, or the next site of a sweep
            self._claim, self._claim_start = claim.id, now
        if now - self._last < self.interval:
            return
        self._last = now
        self.write(self.line(claim, done, budget, k, n, now))

    def line(self, claim, done: int, budget: int, k: int, n: int, now: float) -> str:
        """The progress line for this state of ``claim``."""
        so_far = f", {claim.decide(Tally(k, n))[0].value} so far" if n else ""
        left = ""
        if 1 < done < budget:  # timed from the claim's first sample on
            per_sample = (now - self._claim_start) / (done - 1)
            left = f", at most {_duration(per_sample * (budget - done))} left"
        which = f" [claim {self.finished + 1}/{self.total}]" if self.total else ""
        return f"{self.prefix}{which} {claim.id}: {done}/{budget} samples, k/n {k}/{n}{so_far}{left}"

    def finish(self) -> None:
        """A claim (test) of this process is done."""
        self.finished += 1
        self._claim = None
