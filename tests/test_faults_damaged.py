"""Faults: every kind of damaged cache entry is reported once (path and reason), deleted and
recomputed; none is used and no exception escapes. A 0-byte verdict database is reported."""

from __future__ import annotations

import logging
import shutil
import struct
from pathlib import Path

import numpy as np
import torch
import pytest

import mechinterp as mi
from mechinterp.judges import VerdictCache
from mechinterp.judges.cache import DB_NAME
from mechinterp.suite.gencache import CachingModel, GenerationCache
from mechinterp.testing.claims import knockout_claim_toml

pytest_plugins = ["pytester"]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _nan_bytes(path: Path) -> None:  # same size, some float32 values replaced by NaN
    data = bytearray(path.read_bytes())
    data[-64:] = struct.pack("<f", float("nan")) * 16
    path.write_bytes(bytes(data))


def _flip_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


DAMAGE = {
    "truncated captures": ("captures.safetensors", _truncate),
    "NaN bytes in captures": ("captures.safetensors", _nan_bytes),
    "bit-flipped array": ("array.npy", _flip_bit),
    "truncated array": ("array.npy", _truncate),
    "NaN bytes in the array": ("array.npy", _nan_bytes),
    "missing array": ("array.npy", lambda p: p.unlink()),
    "record without digests": ("record.json", lambda p: p.write_text('{"key": "x", "captures": true}')),
}


def _entry(cm: CachingModel, edit, interventions=(), capture=()) -> Path:
    return cm.cache._dir(cm.key(edit, interventions, [mi.Capture(c) if isinstance(c, str) else c for c in capture]))


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_entry_is_reported_once_deleted_and_recomputed(kind, tiny_model, edit, tmp_path, caplog):
    cm = CachingModel(tiny_model, GenerationCache(tmp_path))
    first = cm.generate(edit, capture=["single.0"])
    folder = _entry(cm, edit, capture=["single.0"])
    name, damage = DAMAGE[kind]
    damage(folder / name)
    with caplog.at_level(logging.WARNING, logger="mechinterp.suite.gencache"):
        again = cm.generate(edit, capture=["single.0"])
        third = cm.generate(edit, capture=["single.0"])
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and str(folder) in messages[0] and "recomputed" in messages[0], messages
    assert cm.generated == 2 and cm.cache.rejected == 1 and cm.cache.hits == 1  # recomputed once, then a hit
    for gen in (again, third):
        assert np.array_equal(gen.array, first.array) and gen.image.tobytes() == first.image.tobytes()
        assert all(np.array_equal(gen.captures[k].numpy(), first.captures[k].numpy()) for k in first.captures)


def test_swapped_arrays_are_both_recomputed(tiny_model, edit, tmp_path, caplog):
    cm = CachingModel(tiny_model, GenerationCache(tmp_path))
    other = edit.replace(seed=edit.seed + 1)
    a, b = cm.generate(edit), cm.generate(other)
    pa, pb = _entry(cm, edit) / "array.npy", _entry(cm, other) / "array.npy"
    tmp = tmp_path / "swap.npy"
    shutil.move(pa, tmp), shutil.move(pb, pa), shutil.move(tmp, pb)
    with caplog.at_level(logging.WARNING, logger="mechinterp.suite.gencache"):
        a2, b2 = cm.generate(edit), cm.generate(other)
    assert len(caplog.records) == 2 and cm.generated == 4
    assert a2.image.tobytes() == a.image.tobytes() and b2.image.tobytes() == b.image.tobytes()


def test_an_empty_verdict_database_is_reported(tmp_path, caplog):
    (tmp_path / DB_NAME).write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="mechinterp.judges.cache"):
        cache = VerdictCache(tmp_path)
        VerdictCache(tmp_path)  # the rebuilt file is sound: no second message
    assert len(caplog.records) == 1 and "0 bytes" in caplog.records[0].getMessage()
    assert str(tmp_path / DB_NAME) in caplog.records[0].getMessage() and len(cache) == 0


def _swap(a: Path, b: Path) -> None:
    tmp = a.with_name("swap")
    a.rename(tmp), b.rename(a), tmp.rename(b)


def test_swapped_entry_folders_are_not_used_but_recomputed_as_a_fresh_run_and_reported(tiny_model, edit, tmp_path, caplog):
    """Two whole entry folders swapped (every digest still matches its file): the record's key is not its folder's,
    so each is damage - reported with its path and reason, recomputed, and what comes back is a fresh run's."""
    other = edit.replace(seed=edit.seed + 1)
    fresh = CachingModel(tiny_model, GenerationCache(tmp_path / "fresh"))
    want = [fresh.generate(e, capture=["single.0"]) for e in (edit, other)]
    cm = CachingModel(tiny_model, GenerationCache(tmp_path / "cache"))
    [cm.generate(e, capture=["single.0"]) for e in (edit, other)]
    folders = [_entry(cm, e, capture=["single.0"]) for e in (edit, other)]
    _swap(*folders)
    with caplog.at_level(logging.WARNING, logger="mechinterp.suite.gencache"):
        got = [cm.generate(e, capture=["single.0"]) for e in (edit, other)]
    assert cm.generated == 4 and cm.cache.hits == 0
    assert [d["path"] for d in cm.cache.damaged] == [str(f) for f in folders]
    assert all("not of its folder's key" in d["reason"] and "recomputed" in d["reason"] for d in cm.cache.damaged)
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [f"damaged cache entry {d['path']}: {d['reason']}" for d in cm.cache.damaged]
    for g, w in zip(got, want):
        assert g.image.tobytes() == w.image.tobytes() and np.array_equal(g.array, w.array)
        assert all(torch.equal(g.captures[k], w.captures[k]) for k in w.captures)


def _rewrite_with_digest(folder: Path, name: str, data: bytes) -> None:
    """Replace one payload file and record its new digest: damage no digest can catch."""
    import hashlib
    import json

    (folder / name).write_bytes(data)
    record = json.loads((folder / "record.json").read_text())
    record["digests"][name] = hashlib.sha256(data).hexdigest()
    (folder / "record.json").write_text(json.dumps(record))


def _nan_captures(folder: Path) -> bytes:
    from safetensors.torch import load, save

    tensors = load((folder / "captures.safetensors").read_bytes())
    name = next(n for n in tensors if not n.endswith("|pos"))
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    return save(tensors)


def _nan_array(folder: Path) -> bytes:
    import io

    array = np.load(folder / "array.npy")
    array[0, 0, 0] = np.nan
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@pytest.mark.parametrize("name,nan", [("captures.safetensors", _nan_captures), ("array.npy", _nan_array)])
def test_a_nan_with_a_correct_digest_is_not_used_but_reported_and_recomputed(name, nan, tiny_model, edit, tmp_path):
    cm = CachingModel(tiny_model, GenerationCache(tmp_path))
    first = cm.generate(edit, capture=["single.0"])
    folder = _entry(cm, edit, capture=["single.0"])
    _rewrite_with_digest(folder, name, nan(folder))
    again = cm.generate(edit, capture=["single.0"])
    assert cm.generated == 2 and [d["path"] for d in cm.cache.damaged] == [str(folder)]
    assert "non-finite" in cm.cache.damaged[0]["reason"]
    assert np.array_equal(again.array, first.array)
    assert all(torch.equal(again.captures[k], first.captures[k]) and bool(torch.isfinite(again.captures[k]).all())
               for k in first.captures)


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # the NaN image the model renders
def test_a_freshly_computed_non_finite_generation_is_refused_naming_the_request(edit, tmp_path):
    """A model that yields NaN (here: one weight set to NaN) must not fill the cache: the error names the request."""
    from mechinterp.testing.tiny import tiny_pipeline

    pipe = tiny_pipeline(seed=0)
    with torch.no_grad():
        next(pipe.transformer.parameters()).view(-1)[0] = float("nan")
    cm = CachingModel(mi.Model(pipe), GenerationCache(tmp_path))
    with pytest.raises(ValueError, match=r"refusing to store a generation with non-finite values in the image array, "
                                         r"capture single\.0 step \d+.*'draw a ball in this color', seed 3"):
        cm.generate(edit, capture=["single.0"])
    assert not list(tmp_path.rglob("record.json"))


def test_a_corrupt_verdict_database_is_rebuilt_and_reported(tmp_path, caplog):
    from mechinterp.judges.verdict import Verdict

    path = tmp_path / DB_NAME
    path.write_bytes(b"this is not an sqlite database" * 100)
    with caplog.at_level(logging.WARNING, logger="mechinterp.judges.cache"):
        cache = VerdictCache(tmp_path)
    assert [d["path"] for d in cache.damaged] == [str(path)] and cache.rejected == 1
    assert "unreadable sqlite" in cache.damaged[0]["reason"] and "rebuilt" in cache.damaged[0]["reason"]
    assert len(caplog.records) == 1 and str(path) in caplog.records[0].getMessage()
    cache.put("k", Verdict(True, "r", "j:m:q"))
    path.write_bytes(b"\0" * 4096)  # damaged while open: the next read rebuilds it, and says so
    assert cache.get("k") is None and len(cache.damaged) == 2 and cache.damaged[1]["path"] == str(path)
    assert VerdictCache(tmp_path).damaged == []  # the rebuilt file is sound


def test_damage_lists_are_pooled_once_each_and_shown_escaped_in_the_header():
    from mechinterp.report.meta import RunMeta

    a = {"path": "/c/generations/ab/ab12", "reason": "generation cache: <b>bad</b>; deleted"}
    b = {"path": "/c/verdicts.sqlite", "reason": "unreadable sqlite; rebuilt"}
    pooled = RunMeta.pool([RunMeta(cache_rejected=1, cache_damage=[a]), RunMeta(cache_rejected=2, cache_damage=[a, b])])
    assert pooled.cache_damage == [a, b]
    row = dict(pooled.rows())["damaged cache entries"]
    assert f"{a['path']}: {a['reason']}" in row and f"{b['path']}: {b['reason']}" in row
    assert RunMeta.from_dict(pooled.to_dict()) == pooled


USER_CLAIMS = knockout_claim_toml()


def test_a_run_on_damaged_caches_recomputes_and_lists_each_entry_on_the_console_run_json_and_report(pytester, tmp_path):
    """Swapped generation entries and a corrupt verdict database, under xdist: the rerun's counts are a fresh
    run's, and every damaged entry reaches the controller's console, ``run.json`` and ``report.html``."""
    import json

    from markupsafe import escape

    from mechinterp.engine.meta import ModelMeta
    from mechinterp.testing.tiny import save_pipeline, tiny_pipeline

    model = tmp_path / "model"
    pipe = tiny_pipeline()
    ModelMeta.of(pipe).replace(site_map={"single.9": "single.1", "double.7": "double.1"}, default_size=64).attach(pipe)
    save_pipeline(pipe, model)
    pytester.path.joinpath("mine.claims.toml").write_text(USER_CLAIMS)
    cache = tmp_path / "cache"
    args = ["mine.claims.toml", "--model", str(model), "--samples", "8", "--cache-dir", str(cache), "-p", "no:randomly"]
    assert pytester.runpytest_subprocess(*args, "--report", str(tmp_path / "fresh")).ret == pytest.ExitCode.OK
    records = sorted(cache.rglob("record.json"), key=lambda p: p.parent.name)
    swapped = [records[0].parent, records[-1].parent]
    _swap(*swapped)
    (cache / DB_NAME).write_bytes(b"not a database" * 300)
    for suffix in ("-wal", "-shm"):
        (cache / (DB_NAME + suffix)).unlink(missing_ok=True)
    result = pytester.runpytest_subprocess(*args, "--report", str(tmp_path / "again"), "-n", "2")
    assert result.ret == pytest.ExitCode.OK

    fresh, again = (json.loads((tmp_path / r / "results.json").read_text()) for r in ("fresh", "again"))
    counts = lambda results: {c: (r["decision"], r["k"], r["n"]) for c, r in results.items()}  # noqa: E731
    assert counts(again) == counts(fresh)
    damage = json.loads((tmp_path / "again" / "run.json").read_text())["cache_damage"]
    assert sorted(d["path"] for d in damage) == sorted([*map(str, swapped), str(cache / DB_NAME)])
    for d in damage:
        assert ("not of its folder's key" if "generations" in d["path"] else "unreadable sqlite") in d["reason"]
    out = result.stdout.str()
    header = (tmp_path / "again" / "report.html").read_text().split("<h2>Paper tables")[0]
    for d in damage:
        assert f"damaged cache entry: {d['path']}: {d['reason']}" in out
        assert str(escape(f"{d['path']}: {d['reason']}")) in header
