"""Faults: every kind of damaged cache entry is reported once (path and reason), deleted and
recomputed; none is used and no exception escapes. A 0-byte verdict database is reported."""

from __future__ import annotations

import logging
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

import mechinterp as mi
from mechinterp.judges import VerdictCache
from mechinterp.judges.cache import DB_NAME
from mechinterp.suite.gencache import CachingModel, GenerationCache


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
