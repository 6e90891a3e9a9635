"""Flex knockouts compile once per shape (issue 32), checked on the CPU with a counting backend.

On CUDA ``flex_attend`` compiles ``flex_attention`` with inductor; a recompile there costs 10-40 s
and, past torch's recompile limit, torch would silently run the uncompiled kernel. Here the same
wrapper compiles with ``torch._dynamo.testing.CompileCounter`` (dynamo's guards and caching are
the real ones, only the graph is run eagerly), so the number of compiles is exact and cheap.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch._dynamo.testing import CompileCounter

import mechinterp as mi
from mechinterp.engine import fast_attention as fa
from mechinterp.engine.attention import allowed_mask
from mechinterp.engine.hooks import Intervene

pytestmark = [pytest.mark.skipif(not fa.flex_available(), reason="no flex_attention in this torch build"),
              pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")]

TOL = 1e-5  # float32 on the CPU: flex's kernel against SDPA with a boolean mask, same maths


@pytest.fixture
def counted():
    """Compile CPU flex knockouts with a counting backend, on a fresh dynamo cache; restored after."""
    torch._dynamo.reset()
    counter = CompileCounter()
    fa.set_flex_backend("cpu", counter)
    try:
        yield counter
    finally:
        fa.set_flex_backend("cpu", None)
        torch._dynamo.reset()


def _image(model, edit, items, mode):
    with Intervene(model.transformer, model.layout(edit), items, table=model.table, n_steps=edit.steps,
                   knockout_mode=mode):
        return model.pipe(**model.pipeline_kwargs(edit), output_type="np").images[0]


def test_flex_knockouts_compile_once_per_shape_and_equal_dense(tiny_model, edit, counted):
    before = fa.flex_stats()
    kinds = [[mi.Knockout("ref", "text.padding")], [mi.Knockout("ref", "image")]]
    flex = [_image(tiny_model, edit, ko, "flex") for ko in kinds for _ in range(2)]  # each kind twice
    after = fa.flex_stats()
    calls = after["calls"] - before["calls"]
    # 4 generations x 4 steps x 4 blocks: one compile for all of them (same shape, two mask kinds, repeated)
    assert calls == 4 * edit.steps * 4
    assert counted.frame_count == 1 and after["compiles"] - before["compiles"] == 1
    assert after["fallbacks"] == before["fallbacks"]
    for ko, images in zip(kinds, (flex[:2], flex[2:])):
        dense = _image(tiny_model, edit, ko, "dense")
        for image in images:
            np.testing.assert_allclose(image, dense, atol=TOL, rtol=0)
    np.testing.assert_array_equal(flex[0], flex[1])


def test_block_masks_are_built_once_per_layout(tiny_model, edit, counted, monkeypatch):
    built = []
    real = fa.flex_block_mask

    def counting(*args, **kwargs):
        built.append(args[1])
        return real(*args, **kwargs)

    import mechinterp.engine.attention as attention

    monkeypatch.setattr(attention, "flex_block_mask", counting)
    monkeypatch.setattr(attention, "_PLAN_CACHE", type(attention._PLAN_CACHE)())
    for _ in range(3):
        _image(tiny_model, edit, [mi.Knockout("ref", "text")], "flex")
    assert built == [tiny_model.layout(edit).seq_len]  # one BlockMask for every block, step and run


def test_a_fall_back_past_the_recompile_limit_is_warned_counted_and_exact(counted):
    gen = torch.Generator().manual_seed(0)
    edges = [fa.Blocked(torch.arange(0, 8), torch.arange(40, 64), "ref->text")]
    mask = fa.flex_block_mask(edges, 64, "cpu")
    dense = allowed_mask(edges, 64)
    before = fa.flex_stats()
    with torch._dynamo.config.patch(recompile_limit=1):
        q, k, v = (torch.randn(1, 64, 2, 16, generator=gen) for _ in range(3))
        first = fa.flex_attend(q, k, v, mask)  # compiles (the one allowed graph)
        q2, k2, v2 = (t.double() for t in (q, k, v))  # a new dtype: a recompile, past the limit
        with pytest.warns(fa.FlexFallbackWarning, match="recompile limit"):
            second = fa.flex_attend(q2, k2, v2, mask)
    after = fa.flex_stats()
    assert after["fallbacks"] - before["fallbacks"] == 1 and after["compiles"] - before["compiles"] == 1
    assert counted.frame_count == 1
    ref = torch.nn.functional.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q2, k2, v2)),
                                                           attn_mask=dense).transpose(1, 2)
    torch.testing.assert_close(second, ref, atol=1e-10, rtol=0)
    torch.testing.assert_close(first, ref.float(), atol=TOL, rtol=0)


def test_the_compiled_wrapper_is_built_once(counted):
    edges = [fa.Blocked(torch.arange(0, 8), torch.arange(40, 64))]
    mask = fa.flex_block_mask(edges, 64, "cpu")
    q = torch.randn(1, 64, 2, 16)
    fa.flex_attend(q, q, q, mask)
    wrapper = fa._FLEX_WRAPPERS["cpu"]
    fa.flex_attend(q, q, q, mask)
    assert fa._FLEX_WRAPPERS["cpu"] is wrapper and counted.frame_count == 1
