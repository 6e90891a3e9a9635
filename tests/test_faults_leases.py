"""Faults: leases die with their owner (kill -9 then an immediate rerun), and two runs on one
generation cache compute each generation once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from PIL import Image

from mechinterp.judges import ColorJudge, VerdictCache
from mechinterp.suite.gencache import GenerationCache

PACKAGE_DIR = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(PACKAGE_DIR), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
HUGE_TTL = 10 * 24 * 3600.0  # a lease time-out no test could wait out

#: takes the verdict claims of two colour bundles and the lease of a generation, says so, then hangs
_HOLDER = """
import sys, time
from PIL import Image
from mechinterp.judges import ColorJudge, VerdictCache
from mechinterp.suite.gencache import GenerationCache
sys.path.insert(0, sys.argv[2])
from test_faults_leases import bundles
judge = ColorJudge(cache=VerdictCache(sys.argv[1]))
for qid, images in bundles():
    assert judge.cache.claim(judge.bundle(0, qid, images).key, %r) == "claimed"
with GenerationCache(sys.argv[1]).lease("ab" * 32):
    print("holding", flush=True)
    time.sleep(3600)
""" % HUGE_TTL


def bundles():
    """Two colour-knockout bundles (reference, baseline, output)."""
    green, grey = (50, 170, 80), (128, 128, 128)
    return [("ko_text.color", [Image.new("RGB", (32, 32), green), Image.new("RGB", (32, 32), green),
                               Image.new("RGB", (32, 32), out)]) for out in (grey, green)]


def _kill_holder(cache_dir: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(cache_dir), str(Path(__file__).parent)],
                            stdout=subprocess.PIPE, text=True, env=ENV, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # kill -9 while it holds every lease
        proc.wait()


def _finishes(fn, seconds: float = 120.0):
    """Run ``fn`` in a thread; its result, or an assertion error if it is still waiting after ``seconds``."""
    out: dict = {}
    thread = threading.Thread(target=lambda: out.setdefault("value", fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert "value" in out, "still waiting on a dead process's lease"
    return out["value"]


def test_a_rerun_after_kill_9_takes_the_dead_owners_leases_at_once(tmp_path):
    _kill_holder(tmp_path)
    cache = VerdictCache(tmp_path)
    judge = ColorJudge(cache=cache)
    judge.claim_ttl = HUGE_TTL
    keys = [judge.bundle(0, qid, images).key for qid, images in bundles()]
    assert [cache.claim(k, HUGE_TTL) for k in keys] == ["claimed", "claimed"]  # the dead owner holds nothing
    for k in keys:
        cache.release(k)
    verdicts = _finishes(lambda: judge.judge_many(bundles()))
    assert [v.passed for v in verdicts] == [True, False] and len(cache) == 2
    with GenerationCache(tmp_path).lease("ab" * 32, wait=False) as held:
        assert held  # the OS dropped the killed process's generation lease


def test_a_live_owner_keeps_its_claim(tmp_path):
    cache, other = VerdictCache(tmp_path), VerdictCache(tmp_path)
    assert cache.claim("k", HUGE_TTL) == "claimed"
    assert other.claim("k", HUGE_TTL) == "busy"  # this process is alive: its claim stands
    with GenerationCache(tmp_path).lease("cd" * 32):
        with GenerationCache(tmp_path).lease("cd" * 32, wait=False) as held:
            assert not held


_RUN = """
import sys, mechinterp as mi
from PIL import Image
from mechinterp.testing import tiny_pipeline
from mechinterp.suite.gencache import CachingModel, GenerationCache
cm = CachingModel(mi.Model(tiny_pipeline()), GenerationCache(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()  # start together
for seed in range(int(sys.argv[2])):
    e = mi.Edit("draw a ball in this color", reference=Image.new("RGB", (64, 64), "red"), seed=seed, height=64, width=64)
    cm.generate(e)
    cm.generate(e, [mi.Knockout("ref", "text")])
print("generated", cm.generated, "hits", cm.cache.hits, flush=True)
"""


def test_two_concurrent_runs_on_one_cache_compute_each_generation_once(tmp_path):
    n = 6
    procs = [subprocess.Popen([sys.executable, "-c", _RUN, str(tmp_path), str(n)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=ENV) for _ in range(2)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:  # both loaded: they now ask for the same generations in the same order
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    counts = [tuple(map(int, re.search(r"generated (\d+) hits (\d+)", o).groups())) for o in outs]
    assert sum(g for g, _ in counts) == 2 * n  # each of the 2n distinct generations computed once
    assert sum(h for _, h in counts) == 2 * n  # and read by the other run
    assert len(list(Path(tmp_path).rglob("record.json"))) == 2 * n


def test_a_judging_owner_renews_its_claims_and_they_lapse_after_it_stops(tmp_path):
    (qid, images), _ = bundles()
    other = VerdictCache(tmp_path)
    seen: list[str] = []

    class SlowColorJudge(ColorJudge):  # a judge call that outlasts the claim's time-out several times
        def _judge_fresh(self, items, deliver):
            time.sleep(1.2)
            seen.append(other.claim(items[0][0], HUGE_TTL))
            return super()._judge_fresh(items, deliver)

    judge = SlowColorJudge(cache=VerdictCache(tmp_path))
    judge.claim_ttl = 0.3
    assert judge.judge(qid, images).passed is True
    assert seen == ["busy"]  # renewed by the heartbeat all along

    stale = VerdictCache(tmp_path)  # an owner on another host that stopped beating: lapses after its ttl
    assert stale.claim("k", 0.2) == "claimed"
    stale.owner = "another-host:1:dead"
    with stale._tx() as conn:
        conn.execute("UPDATE claims SET owner = ? WHERE key = 'k'", (stale.owner,))
    assert other.claim("k", HUGE_TTL) == "busy"
    time.sleep(0.3)
    assert other.claim("k", HUGE_TTL) == "claimed"
