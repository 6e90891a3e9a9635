"""The verdict cache: sharing across processes and xdist workers, corruption, kills."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

from pathlib import Path

from PIL import Image

from mechinterp.judges import AnthropicJudge, ColorJudge, Verdict, VerdictCache
from mechinterp.judges.cache import DB_NAME, bundle_key

SECRET = "sk-ant-test-SECRET"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "mechinterp"

#: Subprocesses below only need mechinterp.judges; registering the package without running
#: mechinterp/__init__.py (which imports the engine and torch) saves seconds per process.
PRELUDE = f"""
import sys, types
_pkg = types.ModuleType("mechinterp")
_pkg.__path__ = [{str(PACKAGE_DIR)!r}]
sys.modules.setdefault("mechinterp", _pkg)
"""


def verdict(i: int) -> Verdict:
    return Verdict(i % 2 == 0, f"reason {i} " + "x" * 400, "anthropic:claude-opus-4-7:lens.color",
                   4000 + i, 40)


def key(i: int) -> str:
    return bundle_key("m", "system", "question", ["label"], [f"digest{i}"])


def color_bundle():
    green = (50, 170, 80)
    return ("ko_text.color", [Image.new("RGB", (32, 32), green), Image.new("RGB", (32, 32), green),
                              Image.new("RGB", (32, 32), (128, 128, 128))])


def test_put_get_and_wal_mode(tmp_path):
    cache = VerdictCache(tmp_path)
    assert cache.get(key(1)) is None
    cache.put(key(1), verdict(1))
    again = VerdictCache(tmp_path)
    assert again.get(key(1)) == Verdict(**{**verdict(1).__dict__, "cached": True})
    conn = sqlite3.connect(tmp_path / DB_NAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_key_depends_on_every_input():
    base = ("m", "s", "q", ["l"], ["d"])
    keys = {bundle_key(*base)}
    for i, changed in enumerate(("m2", "s2", "q2", ["l2"], ["d2"])):
        args = list(base)
        args[i] = changed
        keys.add(bundle_key(*args))
    assert len(keys) == 6


def test_a_bundle_is_keyed_by_its_images_as_judges_see_them():
    """Judges see images with alpha composited on white: two RGBA images with equal colour channels and
    other alpha are other bundles (once they shared a key), and an image and its composite are one."""
    from mechinterp.judges.images import as_rgb

    judge = ColorJudge()
    ref = Image.new("RGB", (16, 16), (220, 30, 30))
    opaque, faint = Image.new("RGBA", (16, 16), (30, 30, 220, 255)), Image.new("RGBA", (16, 16), (30, 30, 220, 40))
    key = lambda out: judge.bundle(0, "ko_text.color", [ref, ref, out]).key  # noqa: E731
    assert key(opaque) != key(faint)
    assert key(faint) == key(as_rgb(faint)) and key(opaque) == key(opaque.convert("RGB"))


def test_corrupt_row_is_rejected_and_rejudged(tmp_path):
    cache = VerdictCache(tmp_path)
    judge = ColorJudge(cache=cache)
    first = judge.judge(*color_bundle())
    assert first.passed is True and not first.cached
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("UPDATE verdicts SET record = replace(record, 'true', 'false')")
    conn.commit()
    conn.close()
    second = judge.judge(*color_bundle())
    assert second == first and cache.rejected == 1  # re-judged, not the tampered row
    assert judge.judge(*color_bundle()).cached


def test_truncated_database_is_recovered(tmp_path, caplog):
    cache = VerdictCache(tmp_path)
    for i in range(100):
        cache.put(key(i), verdict(i))
    path = tmp_path / DB_NAME
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = path.stat().st_size
    assert size > 20_000
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    recovered = VerdictCache(tmp_path)
    assert "damaged" in caplog.text
    hits = [recovered.get(key(i)) for i in range(100)]
    assert all(h is None or h == Verdict(**{**verdict(i).__dict__, "cached": True})
               for i, h in enumerate(hits))
    recovered.put(key(1000), verdict(1000))
    assert recovered.get(key(1000)) is not None
    with open(path, "r+b") as fh:  # a header torn in half: not even a database any more
        fh.truncate(50)
    assert VerdictCache(tmp_path).get(key(1000)) is None


def test_a_kill_mid_write_leaves_a_consistent_cache(tmp_path):
    script = PRELUDE + textwrap.dedent(f"""
        from mechinterp.judges.cache import VerdictCache
        from mechinterp.judges.verdict import Verdict
        cache = VerdictCache({str(tmp_path)!r})
        i = 0
        while True:
            cache.put(f"k{{i}}", Verdict(True, "r" * 500, "j:m:lens.color", i, 1))
            i += 1
            if i == 50:
                print("ready", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    cache = VerdictCache(tmp_path)
    n = len(cache)
    assert n >= 50
    assert all(cache.get(f"k{i}") is not None for i in range(n)) and cache.rejected == 0


def test_claims_give_one_worker_each_bundle_and_lapse(tmp_path):
    a, b = VerdictCache(tmp_path), VerdictCache(tmp_path)
    assert a.claim(key(1), ttl=60) == "claimed"
    assert b.claim(key(1), ttl=60) == "busy"
    a.put(key(1), verdict(1))
    assert b.claim(key(1), ttl=60) == "done"
    assert a.claim(key(2), ttl=0.0) == "claimed"  # a worker that died holding a claim
    assert b.claim(key(2), ttl=60) == "claimed"


def test_many_at_once_answers_as_one_at_a_time(tmp_path):
    """``get_many`` / ``claim_many`` (one connection or transaction for a judge's whole batch) give what
    ``get`` / ``claim`` give key by key, past SQLite's bound-parameter limit and with a corrupt row among them."""
    a, b = VerdictCache(tmp_path), VerdictCache(tmp_path)
    keys = [key(i) for i in range(1203)]
    for i in range(0, 1203, 3):
        a.put(keys[i], verdict(i))
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("UPDATE verdicts SET record = 'not json' WHERE key = ?", (keys[600],))
    conn.commit()
    conn.close()
    got = b.get_many(keys)
    assert list(got) == keys and b.rejected == 1 and got[keys[600]] is None
    assert all(got[keys[i]] == b.get(keys[i]) for i in range(0, 1203, 7))
    assert sum(v is not None for v in got.values()) == 400
    assert a.claim(keys[1], ttl=60) == "claimed"  # held by a live worker
    claims = b.claim_many(keys[:9], ttl=60)
    assert claims == {k: ("done" if i % 3 == 0 else "busy" if i == 1 else "claimed") for i, k in enumerate(keys[:9])}
    assert a.claim(keys[2], ttl=60) == "busy" and b.claim(keys[2], ttl=60) == "claimed"


def test_a_judge_takes_over_a_bundle_whose_owner_died(tmp_path):
    dead = VerdictCache(tmp_path)
    judge = ColorJudge(cache=VerdictCache(tmp_path))
    item = judge.bundle(0, *color_bundle())
    assert dead.claim(item.key, ttl=0.3) == "claimed"
    start = time.monotonic()
    assert judge.judge(*color_bundle()).passed is True
    assert 0.25 <= time.monotonic() - start < 5


WORKER_TEST = PRELUDE + """
import json, os
from PIL import Image
from mechinterp.judges import AnthropicJudge, VerdictCache

def test_judge_the_shared_bundles():
    judge = AnthropicJudge(api_key=os.environ["FAKE_KEY"], base_url=os.environ["FAKE_URL"],
                           cache=VerdictCache(os.environ["CACHE_DIR"]), backoff_base=0.001,
                           max_concurrency=2)
    items = [("lens.color", [Image.new("RGB", (8, 8), (i * 30, 0, 0))] * 3) for i in range(6)]
    verdicts = judge.judge_many(items)
    out = os.path.join(os.environ["OUT_DIR"], os.environ["PYTEST_XDIST_WORKER"] + ".json")
    with open(out, "w") as fh:
        json.dump([[v.passed, v.reason, v.input_tokens, v.cached] for v in verdicts], fh)
"""


def test_two_judges_in_threads_call_the_api_once_per_bundle(tmp_path, fake_anthropic):
    """The claim protocol without process start-up: two caches (two owners) on one directory."""
    fake_anthropic.delay = 0.05
    items = [("lens.color", [Image.new("RGB", (8, 8), (i * 30, 0, 0))] * 3) for i in range(6)]
    judges = [AnthropicJudge(api_key=SECRET, base_url=fake_anthropic.base_url, max_concurrency=2,
                             cache=VerdictCache(tmp_path)) for _ in range(2)]
    for judge in judges:
        judge.wait_poll = 0.01
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda j: j.judge_many(items), judges))
    assert len(fake_anthropic.message_requests()) == 6
    assert [a.cached + b.cached for a, b in zip(*results)] == [1] * 6
    assert sum(j.usage.calls for j in judges) == 6


def test_two_xdist_workers_call_the_api_once_per_bundle(tmp_path, fake_anthropic):
    fake_anthropic.delay = 0.1  # keep calls in flight long enough for the workers to collide
    fake_anthropic.responder = lambda body: json.dumps(
        {"pass": 1, "reason": f"call {len(fake_anthropic.message_requests())}"})
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_worker.py").write_text(WORKER_TEST)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "FAKE_URL": fake_anthropic.base_url, "FAKE_KEY": SECRET,
           "CACHE_DIR": str(tmp_path / "cache"), "OUT_DIR": str(out)}
    # plugins this run does not need are switched off: each costs seconds per worker
    no_plugins = ["-p", "no:cacheprovider", "-p", "no:mechinterp", "-p", "no:hypothesispytest"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "each", "-q", *no_plugins,
         "-c", str(tmp_path / "pytest.ini"), str(tmp_path / "test_worker.py")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    results = [json.loads(p.read_text()) for p in sorted(out.glob("gw*.json"))]
    assert len(results) == 2
    assert len(fake_anthropic.message_requests()) == 6
    assert [r[:3] for r in results[0]] == [r[:3] for r in results[1]]
    assert [a[3] + b[3] for a, b in zip(*results)] == [1] * 6  # each fresh once, cached once


class CountingCache(VerdictCache):
    """A real cache that counts its SQLite connections (each write transaction opens one)."""

    connects = 0

    def _connect(self):
        self.connects += 1
        return super()._connect()


def test_put_many_stores_exactly_what_put_stores(tmp_path):
    """Rows written in one ``put_many`` transaction equal, byte for byte, those of ``put`` one at a time
    (record and checksum), read back the same through get and get_many, and release the claims as put does."""
    items = [(key(i), verdict(i)) for i in range(40)] + [(key(99), Verdict(None, "ΔE 12.3 — ambiguous", "c:m:q", 0, 0))]
    one, many = VerdictCache(tmp_path / "one"), VerdictCache(tmp_path / "many")
    other = VerdictCache(tmp_path / "many")
    assert many.claim_many([k for k, _ in items], ttl=60) == {k: "claimed" for k, _ in items}
    for k, v in items:
        one.put(k, v)
    many.put_many(items)
    keys = [k for k, _ in items]
    assert one.get_many(keys) == many.get_many(keys) == {k: Verdict(**{**v.__dict__, "cached": True}) for k, v in items}
    assert all(one.get(k) == many.get(k) for k in keys)

    def rows(path):
        conn = sqlite3.connect(path / DB_NAME)
        try:
            return conn.execute("SELECT key, record, checksum FROM verdicts ORDER BY key").fetchall()
        finally:
            conn.close()

    assert rows(tmp_path / "one") == rows(tmp_path / "many") and len(rows(tmp_path / "one")) == len(items)
    assert other.claim_many(keys, ttl=60) == {k: "done" for k in keys}  # put_many released our claims
    conn = sqlite3.connect(tmp_path / "many" / DB_NAME)
    assert conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
    conn.close()


def test_put_many_is_one_connection_and_one_transaction(tmp_path):
    cache = CountingCache(tmp_path)
    cache.connects = 0
    cache.put_many([(key(i), verdict(i)) for i in range(200)])
    assert cache.connects == 1 and len(cache) == 200
    cache.connects = 0
    cache.put_many([])
    assert cache.connects == 0
    for i in range(3):
        cache.put(key(1000 + i), verdict(i))
    assert cache.connects == 3


def test_put_many_recovers_a_damaged_database_like_put(tmp_path, caplog):
    cache = VerdictCache(tmp_path)
    cache.put_many([(key(i), verdict(i)) for i in range(50)])
    path = tmp_path / DB_NAME
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with open(path, "r+b") as fh:  # a header torn in half, under an open cache object
        fh.truncate(50)
    cache.put_many([(key(i), verdict(i)) for i in range(100, 110)])
    assert "damaged" in caplog.text
    assert all(cache.get(key(i)) == Verdict(**{**verdict(i).__dict__, "cached": True}) for i in range(100, 110))


def colour_items(n):
    return [("ko_text.color", [Image.new("RGB", (32, 32), (50, 170, 80)), Image.new("RGB", (32, 32), (50, 170, 80)),
                               Image.new("RGB", (32, 32), (i, 128, 128))]) for i in range(n)]


def test_a_pixel_judge_stores_its_batch_in_one_transaction(tmp_path):
    """A colour batch costs three connections (look-up, claims, one put_many), whatever its size; every
    verdict lands in the cache and no claim is left behind."""
    cache = CountingCache(tmp_path)
    cache.connects = 0
    fresh = ColorJudge(cache=cache).judge_many(colour_items(30))
    assert cache.connects == 3 and len(cache) == 30 and not any(v.cached for v in fresh)
    again = ColorJudge(cache=VerdictCache(tmp_path)).judge_many(colour_items(30))
    assert again == [Verdict(**{**v.__dict__, "cached": True}) for v in fresh]
    assert fresh == ColorJudge().judge_many(colour_items(30))  # the same verdicts as with no cache at all
    conn = sqlite3.connect(tmp_path / DB_NAME)
    assert conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
    conn.close()


def test_a_pixel_batch_that_fails_midway_keeps_what_it_decided(tmp_path):
    class Failing(ColorJudge):
        def decide(self, question, images):
            if images[2].getpixel((0, 0))[0] == 5:
                raise RuntimeError("boom")
            return super().decide(question, images)

    cache = VerdictCache(tmp_path)
    try:
        Failing(cache=cache).judge_many(colour_items(10))
    except RuntimeError:
        pass
    else:
        raise AssertionError("the failing decision should raise")
    assert len(cache) == 5  # the five decided before the failure were stored
    other = VerdictCache(tmp_path)  # and every claim was settled or released: nothing is left busy
    judge = ColorJudge(cache=other)
    assert set(other.claim_many([judge.bundle(i, *it).key for i, it in enumerate(colour_items(10))],
                                ttl=60).values()) <= {"done", "claimed"}


def test_a_network_judge_still_stores_each_verdict_as_it_comes(tmp_path, fake_anthropic):
    """The Claude judge keeps one transaction per verdict: a kill must not lose an answer already paid for."""
    cache = CountingCache(tmp_path)
    cache.connects = 0
    items = [("lens.color", [Image.new("RGB", (8, 8), (i * 30, 0, 0))] * 3) for i in range(4)]
    AnthropicJudge(api_key=SECRET, base_url=fake_anthropic.base_url, max_concurrency=2, cache=cache).judge_many(items)
    assert cache.connects == 2 + 4 and len(cache) == 4
