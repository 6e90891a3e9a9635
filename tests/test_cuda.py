"""The CUDA-only paths (issue 18): pinned asynchronous captures, compiled flex_attention, bf16
knockouts, truncating drops and batching on a GPU, and the bench's CUDA peak memory.

Every test here is marked ``cuda``: skipped with the reason where torch sees no GPU (tests/conftest.py),
run by ``bench/gpu-check`` on a GPU machine (``pytest tests/test_cuda.py -m cuda``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mechinterp as mi
from mechinterp.bench import harness
from mechinterp.bench.shapes import SMALL, TOKENS_SMALL, build_transformer, synthetic_inputs, synthetic_layout
from mechinterp.engine.fast_attention import flex_available
from mechinterp.engine.hooks import Intervene
from mechinterp.testing.tiny import tiny_pipeline

pytestmark = [pytest.mark.cuda, pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")]

TOL = 1e-4  # float32 on CUDA, different attention kernels (flash / efficient / flex): same maths, other rounding
_NO_FLEX = pytest.mark.skipif(not flex_available(), reason="no flex_attention in this torch")
MODES = ["split", pytest.param("flex", marks=_NO_FLEX)]


@pytest.fixture(scope="module")
def gpu_model():
    """The tiny pipeline on the GPU in float32, TF32 off so kernels differ only in reduction order."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield mi.Model(tiny_pipeline(seed=0).to("cuda"))
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_captures_are_pinned_host_copies_of_the_device_rows_and_change_nothing(gpu_model, edit):
    sites = [mi.Capture("single.0", "text"), mi.Capture("double.1", "image"), mi.Capture("double.0", "text.padding")]
    clean = gpu_model.generate(edit)
    captured = gpu_model.generate(edit, capture=sites)
    assert np.array_equal(captured.array, clean.array)
    with torch.inference_mode(), Intervene(gpu_model.transformer, gpu_model.layout(edit), sites, table=gpu_model.table,
                                           n_steps=edit.steps, offload_captures=False) as ctx:
        gpu_model.pipe(**gpu_model.pipeline_kwargs(edit), output_type="np")
    assert set(captured.captures) == set(ctx.captures) and len(ctx.captures) == 3 * edit.steps
    for key, host in captured.captures.items():
        assert host.device.type == "cpu" and host.is_pinned(), key
        assert ctx.captures[key].device.type == "cuda"
        assert torch.equal(host, ctx.captures[key].cpu()), key


def test_patching_a_generations_own_captures_back_changes_nothing(gpu_model, edit):
    clean = gpu_model.generate(edit, capture=[mi.Capture("double.1", "text")])
    patched = gpu_model.generate(edit, [mi.Patch("double.1", clean.captures, "text")])
    assert np.array_equal(patched.array, clean.array)
    other = gpu_model.generate(edit, [mi.Patch("double.1", torch.zeros(gpu_model.layout(edit).text_len, 32), "text")])
    assert not np.array_equal(other.array, clean.array)  # a patch that differs does act


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ko", ["ref->text.padding", "ref->image", "text.content->image"])
def test_fast_knockouts_equal_the_dense_mask_on_cuda(gpu_model, edit, mode, ko):
    items = [mi.Knockout(*ko.split("->"))]
    images = {}
    for m in ("dense", mode):
        images[m] = gpu_model.with_modes(knockout_mode=m).generate(edit, items)
    np.testing.assert_allclose(images[mode].array, images["dense"].array, atol=TOL, rtol=0)
    assert images[mode].fired == images["dense"].fired and images[mode].fired


@pytest.mark.parametrize("mode", MODES)
def test_bf16_knockouts_on_the_bench_transformer_match_the_dense_mask(mode):
    """The bench's bf16 path: split/flex and dense attention outputs of the knocked-out blocks agree
    to bf16 rounding, far below the knockout's own effect on them."""
    transformer = build_transformer(SMALL, "cuda", torch.bfloat16)
    layout = synthetic_layout(**TOKENS_SMALL)
    inputs = synthetic_inputs(SMALL, layout, "cuda", torch.bfloat16)
    ko = [mi.Knockout("ref", "text.padding"), mi.Knockout("ref", "image", sites=("double.0", "single.1"))]
    blocks = [transformer.transformer_blocks[0], transformer.single_transformer_blocks[1]]

    def attention(items, m):
        outs = []
        flat = lambda o: torch.cat([x.float().flatten() for x in (o if isinstance(o, tuple) else (o,))])  # noqa: E731
        hooks = [b.attn.register_forward_hook(lambda mod, a, o: outs.append(flat(o))) for b in blocks]
        try:
            with torch.inference_mode(), Intervene(transformer, layout, items, knockout_mode=m):
                transformer(**inputs)
        finally:
            for h in hooks:
                h.remove()
        return torch.cat(outs)

    clean, dense, fast = attention([], "auto"), attention(ko, "dense"), attention(ko, mode)
    err = ((fast - dense).norm() / dense.norm()).item()
    effect = ((clean - dense).norm() / dense.norm()).item()
    assert err < 2e-2 and effect > 10 * err, (err, effect)


def test_truncating_ref_drop_equals_masking_on_cuda(gpu_model, edit):
    for site in gpu_model.table.blocks[1:]:
        drops = {}
        for rd, ko in (("mask", "dense"), ("truncate", "auto")):
            drops[rd] = gpu_model.with_modes(knockout_mode=ko, ref_drop_mode=rd).generate(edit, [mi.RefDrop(site.name)])
        np.testing.assert_allclose(drops["truncate"].array, drops["mask"].array, atol=TOL, rtol=0, err_msg=site.name)


def test_batched_generation_on_cuda_equals_one_by_one(gpu_model, edit, solid):
    edits = [edit, edit.replace(reference=solid((20, 200, 20)), seed=7)]
    items = [mi.Knockout("ref", "text.padding")]
    many = gpu_model.generate_many(edits, items, capture=["single.0"])
    for batched, e in zip(many, edits, strict=True):
        one = gpu_model.generate(e, items, capture=["single.0"])
        np.testing.assert_allclose(batched.array, one.array, atol=TOL, rtol=0)
        torch.testing.assert_close(batched.captures[("single.0", 3)], one.captures[("single.0", 3)], atol=TOL, rtol=0)


def test_bench_peak_memory_on_cuda_is_the_allocator_high_water_mark():
    mib = 2**20

    def allocate():
        return torch.empty(96 * mib, dtype=torch.uint8, device="cuda").fill_(1)

    before = torch.cuda.memory_allocated() / mib
    results = harness.run_bench([harness.Setting("clean", "clean", allocate)], "cuda", repeats=2, log=lambda *a: None)
    assert before + 96 <= results[0].peak_mb < before + 96 + 8
    assert all(t > 0 for t in results[0].times_s)
