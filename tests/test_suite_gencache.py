"""The generation cache: hits return what was generated, keys follow content, a killed run resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mechinterp as mi
from mechinterp import experiments as ex
from mechinterp.suite.gencache import CachingModel, GenerationCache


def test_only_the_array_is_stored_and_an_image_that_is_not_its_rendering_is_refused(tiny_model, edit, tmp_path):
    from dataclasses import replace

    from mechinterp.engine.generation import render

    cm = CachingModel(tiny_model, GenerationCache(tmp_path))
    gen = cm.generate(edit)
    folder = cm.cache._dir(cm.key(edit))
    assert sorted(p.name for p in folder.iterdir()) == ["array.npy", "record.json"]
    assert render(gen.array).tobytes() == gen.image.tobytes()
    with pytest.raises(ValueError, match="not the rendering of its array"):
        cm.cache.put("0" * 64, replace(gen, image=gen.image.rotate(90)))


def test_hits_return_the_generated_images_and_captures(tiny_model, edit, tmp_path):
    cm = CachingModel(tiny_model, GenerationCache(tmp_path))
    first = cm.generate(edit, [mi.Knockout("ref", "text")], capture=["single.0"])
    again = cm.generate(edit, [mi.Knockout("ref", "text")], capture=["single.0"])
    assert (cm.cache.misses, cm.cache.hits) == (1, 1)
    assert np.array_equal(first.array, again.array) and first.image.tobytes() == again.image.tobytes()
    assert set(first.captures) == set(again.captures)
    assert all(np.array_equal(first.captures[k].numpy(), again.captures[k].numpy()) for k in first.captures)
    plain = cm.generate(edit, [mi.Knockout("ref", "text")])  # the capture run also filled the plain key
    assert cm.cache.misses == 1 and np.array_equal(plain.array, first.array)


def test_keys_follow_content(tiny_model, edit, tmp_path):
    cm = CachingModel(tiny_model, GenerationCache(tmp_path))
    assert cm.key(edit) == cm.key(edit.replace())
    assert cm.key(edit) != cm.key(edit.replace(seed=edit.seed + 1))
    assert cm.key(edit, [mi.Knockout("ref", "text", sites=(2,))]) == cm.key(edit, [mi.Knockout("ref", "text", sites=("single.0",))])
    assert cm.key(edit, [mi.Knockout("ref", "text")]) != cm.key(edit, [mi.Knockout("ref", "image")])


def test_experiments_share_the_clean_baseline(tiny_model, edit, tmp_path):
    cm = CachingModel(tiny_model, GenerationCache(tmp_path))
    ex.knockout(cm, edit, "ref", "text")
    ex.knockout(cm, edit, "ref", "image")
    ex.ref_drop(cm, edit, "double.1")
    assert cm.generated == 4  # one baseline + three interventions


def test_half_written_entry_is_regenerated(tiny_model, edit, tmp_path):
    cm = CachingModel(tiny_model, GenerationCache(tmp_path))
    cm.generate(edit)
    record = next(Path(tmp_path).rglob("record.json"))
    record.write_text("{ truncated")
    cm.generate(edit)
    assert cm.cache.misses == 2


_WORKER = """
import sys, mechinterp as mi
from PIL import Image
from mechinterp.testing import tiny_pipeline
from mechinterp.suite.gencache import CachingModel, GenerationCache
cm = CachingModel(mi.Model(tiny_pipeline()), GenerationCache(sys.argv[1]))
for seed in range(int(sys.argv[2])):
    e = mi.Edit("draw a ball in this color", reference=Image.new("RGB", (64, 64), "red"), seed=seed, height=64, width=64)
    cm.generate(e, [mi.Knockout("ref", "text")])
    print("done", seed, flush=True)
print("generated", cm.generated, flush=True)
"""


def test_a_killed_run_resumes_without_redoing_finished_work(tmp_path):
    n = 12
    cmd = [sys.executable, "-c", _WORKER, str(tmp_path), str(n)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    finished = 0
    deadline = time.time() + 240
    for line in proc.stdout:
        if line.startswith("done"):
            finished += 1
        if finished >= 3 or time.time() > deadline:
            break
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9, possibly mid-write
    proc.wait()
    complete = len(list(Path(tmp_path).rglob("record.json")))
    assert 3 <= complete < n
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout
    assert f"generated {n - complete}" in out


def test_noise_device_is_part_of_the_key(tiny_model, edit, tmp_path):
    """CPU and CUDA generators draw different noise for one seed, so the noise device type is in the
    key; on a CPU model both settings draw on the CPU and share entries."""
    import torch

    class CudaNoise(mi.Model):
        @property
        def noise_device(self):
            return torch.device("cuda")

    cpu = CachingModel(mi.Model(tiny_model.pipe, generator="cpu"), GenerationCache(tmp_path))
    dev = CachingModel(tiny_model, GenerationCache(tmp_path))
    cuda = CachingModel(CudaNoise(tiny_model.pipe), GenerationCache(tmp_path))
    assert cpu.key(edit) == dev.key(edit) != cuda.key(edit)
