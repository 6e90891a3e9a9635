"""Progress lines of long claim runs: rate-limited, with samples, k/n so far and the time left."""

from __future__ import annotations

import pytest

from mechinterp.claims import claims_by_id, load_registry
from mechinterp.suite.progress import Progress
from mechinterp.suite.settings import parse_progress

CLAIM = claims_by_id(load_registry())["knockout[ref->text]-color"]  # hypothesis rate >= 0.5


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_one_line_per_interval_at_most_and_none_for_a_quick_claim():
    lines, clock = [], Clock()
    progress = Progress(lines.append, 60.0, clock=clock, total=3)
    for done in range(1, 129):  # 128 samples, 2 s each: 256 s -> 4 lines, not 128
        clock.t += 2.0
        progress.update(CLAIM, done, 128, k=done // 2, n=done // 2)
    assert len(lines) == 4
    # the first line 60 s after progress began: 60 s for the 30 samples after the first, 2 s each for 97 left
    assert lines[0] == ("mechinterp [claim 1/3] knockout[ref->text]-color: 31/128 samples, k/n 15/15, "
                        "holds so far, at most 3m14s left")
    progress.finish()
    quick = []
    other = Progress(quick.append, 60.0, clock=clock)
    for done in range(1, 20):
        clock.t += 1.0
        other.update(CLAIM, done, 64, 0, 0)
    assert quick == []


def test_a_new_claim_restarts_the_time_estimate():
    lines, clock = [], Clock()
    progress = Progress(lines.append, 0.0, clock=clock)
    for done in (1, 2, 3):
        clock.t += 10.0
        progress.update(CLAIM, done, 4, 0, 0)
    progress.finish()
    clock.t += 500.0  # time between claims is not a sample's time
    progress.update(CLAIM, 1, 4, 0, 0)
    clock.t += 1.0
    progress.update(CLAIM, 2, 4, 0, 0)
    assert lines[2].endswith("3/4 samples, k/n 0/0, at most 10s left")
    assert lines[-1].endswith("2/4 samples, k/n 0/0, at most 2s left")


@pytest.mark.parametrize("text, terminal, expected", [("auto", True, 10.0), ("auto", False, 60.0), ("off", True, None),
                                                       ("0", False, 0.0), ("2.5", False, 2.5)])
def test_progress_option(text, terminal, expected):
    assert parse_progress(text, terminal) == expected


@pytest.mark.parametrize("bad", ["-1", "soon", "nan"])
def test_bad_progress_option_is_named(bad):
    with pytest.raises(ValueError, match=f"--mi-progress '{bad}': expected auto, off or a number of seconds >= 0"):
        parse_progress(bad, False)
