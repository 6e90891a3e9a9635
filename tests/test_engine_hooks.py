"""The Intervene context: firing counts, cleanup after failures, composition, attention maths."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from diffusers.models.embeddings import apply_rotary_emb

import mechinterp as mi
from mechinterp.engine.hooks import Intervene


def _hook_state(model):
    """Every forward hook id and attention processor object of the transformer."""
    hooks = {name: (tuple(m._forward_hooks), tuple(m._forward_pre_hooks)) for name, m in model.transformer.named_modules()}
    return hooks, dict(model.transformer.attn_processors)


def test_each_intervention_fires_once_per_targeted_block_and_step(tiny_model, edit):
    ko = mi.Knockout("ref", "text", sites=("double.1", "single.0"), steps=(1, 2))
    with tiny_model.intervene(edit, ko, mi.Capture("single.1", steps=(0, 3)), mi.Patch("embed", torch.zeros(48, 32), steps=2)) as ctx:
        tiny_model.pipe(**tiny_model.pipeline_kwargs(edit))
    expected = Counter({
        (ko.describe(), "double.1", 1): 1, (ko.describe(), "double.1", 2): 1,
        (ko.describe(), "single.0", 1): 1, (ko.describe(), "single.0", 2): 1,
        ("Capture(single.1, text, steps=[0, 3])", "single.1", 0): 1,
        ("Capture(single.1, text, steps=[0, 3])", "single.1", 3): 1,
        ("Patch(embed, text, steps=[2])", "embed", 2): 1,
    })
    assert ctx.fired == expected


def test_knockout_on_every_block_fires_on_every_block_and_step(tiny_model, edit):
    g = tiny_model.generate(edit, [mi.Knockout("ref", "image")])
    assert len(g.fired) == len(tiny_model.table.blocks) * edit.steps
    assert set(g.fired.values()) == {1}


def test_exception_inside_context_restores_everything(tiny_model, edit):
    calls = []
    block = tiny_model.transformer.single_transformer_blocks[0]
    user_hook = block.register_forward_hook(lambda m, a, o: calls.append(1))
    try:
        before = _hook_state(tiny_model)
        clean = tiny_model.generate(edit)
        with pytest.raises(KeyError):
            with tiny_model.intervene(edit, mi.Knockout("ref", "text"), mi.Capture("single.0"), mi.RefDrop("double.0")):
                raise KeyError("boom")
        assert _hook_state(tiny_model) == before
        calls.clear()
        again = tiny_model.generate(edit)
        assert np.array_equal(again.array, clean.array)
        assert len(calls) == edit.steps  # the user's hook still fires
    finally:
        user_hook.remove()


def test_exception_during_generation_restores_everything(tiny_model, edit):
    before = _hook_state(tiny_model)
    clean = tiny_model.generate(edit)

    def explode(module, args, output):
        raise RuntimeError("fails mid-forward")

    with pytest.raises(RuntimeError, match="mid-forward"):
        with tiny_model.intervene(edit, mi.Knockout("ref", "image"), mi.Patch("double.0", torch.zeros(48, 32))):
            h = tiny_model.transformer.single_transformer_blocks[1].register_forward_hook(explode)
            try:
                tiny_model.pipe(**tiny_model.pipeline_kwargs(edit))
            finally:
                h.remove()
    assert _hook_state(tiny_model) == before
    assert np.array_equal(tiny_model.generate(edit).array, clean.array)


def test_preexisting_custom_processor_is_wrapped_and_restored(tiny_model, edit):
    attn = tiny_model.transformer.transformer_blocks[0].attn
    stock = attn.processor
    seen = []

    class Spy:
        def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None):
            seen.append(attention_mask is not None)
            return stock(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)

    spy = Spy()
    attn.set_processor(spy)
    try:
        tiny_model.generate(edit, [mi.Knockout("ref", "image", sites=("double.0",))])
        assert seen and all(seen)  # our mask reached the user's processor
        assert attn.processor is spy
    finally:
        attn.set_processor(stock)


def test_nested_contexts_compose(tiny_model, edit, solid):
    other = tiny_model.generate(edit.replace(reference=solid((20, 200, 20)), seed=5), capture=["single.0"])
    a = mi.Knockout("ref", "text.padding")
    b = mi.Patch("single.0", other.captures, "text.content")
    c = mi.Capture("single.1")
    with tiny_model.intervene(edit, a) as outer, tiny_model.intervene(edit, b, c) as inner:
        nested = tiny_model.pipe(**tiny_model.pipeline_kwargs(edit), output_type="np").images[0]
    flat = tiny_model.generate(edit, [a, b], capture=[c])
    assert np.array_equal(nested, flat.array)
    assert torch.equal(inner.captures[("single.1", 3)], flat.captures[("single.1", 3)])
    assert outer.fired and inner.fired


def test_a_reentered_intervene_records_what_a_fresh_one_does(tiny_model, edit):
    """Each entry of one ``Intervene`` is a new run: the step clock restarts, so ``Capture(steps=0)``
    captures the second run's step 0 (it once captured nothing and kept the first run's rows), and
    the first entry's captures and counts are left as they were; hooks are gone after each exit."""
    items = (mi.Capture("single.1", "image", steps=0), mi.Capture("double.0", steps=(1, 3)),
             mi.Knockout("ref", "text", sites=("single.0",)), mi.RefDrop("single.1"))
    other = edit.replace(seed=5)  # kwargs built per run: a run consumes its generator
    before = _hook_state(tiny_model)
    ctx = tiny_model.intervene(edit, *items)
    with ctx:
        tiny_model.pipe(**tiny_model.pipeline_kwargs(edit))
    assert _hook_state(tiny_model) == before
    first_captures, first_fired = ctx.captures, ctx.fired
    kept = {k: v.clone() for k, v in first_captures.items()}
    with ctx:
        second = tiny_model.pipe(**tiny_model.pipeline_kwargs(other), output_type="np").images[0]
    assert _hook_state(tiny_model) == before
    with tiny_model.intervene(edit, *items) as fresh:
        expected = tiny_model.pipe(**tiny_model.pipeline_kwargs(other), output_type="np").images[0]
    assert np.array_equal(second, expected)
    assert ctx.step == fresh.step == edit.steps - 1
    assert set(ctx.captures) == set(fresh.captures) == {("single.1", 0), ("double.0", 1), ("double.0", 3)}
    assert all(torch.equal(ctx.captures[k], fresh.captures[k]) for k in fresh.captures)
    assert ctx.fired == fresh.fired
    assert not torch.equal(ctx.captures[("single.1", 0)], kept[("single.1", 0)])  # another seed: other rows
    assert first_captures is not ctx.captures and first_fired is not ctx.fired
    assert all(torch.equal(first_captures[k], kept[k]) for k in kept)  # the first run's results untouched


def test_an_intervene_cannot_be_entered_inside_itself(tiny_model, edit):
    before = _hook_state(tiny_model)
    ctx = tiny_model.intervene(edit, mi.Capture("single.0"), mi.Knockout("ref", "image"))
    with ctx:
        installed = _hook_state(tiny_model)
        with pytest.raises(RuntimeError, match="already active: it cannot be entered again inside its own"):
            with ctx:
                pass
        assert _hook_state(tiny_model) == installed  # the refused entry touched nothing
        tiny_model.pipe(**tiny_model.pipeline_kwargs(edit))
    assert _hook_state(tiny_model) == before
    assert len(ctx.captures) == edit.steps
    with ctx:  # once exited it may be entered again
        pass
    assert _hook_state(tiny_model) == before


def test_bad_patch_values_raise_before_anything_is_installed(tiny_model, edit):
    before = _hook_state(tiny_model)
    with pytest.raises(ValueError, match=r"shape \(5, 32\), expected \(48, 32\)"):
        tiny_model.generate(edit, [mi.Patch("single.0", torch.zeros(5, 32))])
    with pytest.raises(ValueError, match="no values for site 'single.1' at steps"):
        tiny_model.generate(edit, [mi.Patch("single.1", {("single.1", 0): torch.zeros(48, 32)})])
    with pytest.raises(ValueError, match="has no reference"):
        tiny_model.generate(edit.replace(reference=None), [mi.Knockout("ref", "image")])
    assert _hook_state(tiny_model) == before


class _ProbeProcessor:
    """Hand-written single-stream attention (the reference maths), recording probabilities."""

    def __init__(self):
        self.probs = []

    def __call__(self, attn, hidden_states, attention_mask=None, image_rotary_emb=None):
        h = attn.to_qkv_mlp_proj(hidden_states)
        qkv, mlp = torch.split(h, [3 * attn.inner_dim, attn.mlp_hidden_dim * attn.mlp_mult_factor], dim=-1)
        q, k, v = (t.unflatten(-1, (-1, attn.head_dim)) for t in qkv.chunk(3, dim=-1))
        q, k = attn.norm_q(q), attn.norm_k(k)
        q = apply_rotary_emb(q, image_rotary_emb, sequence_dim=1)
        k = apply_rotary_emb(k, image_rotary_emb, sequence_dim=1)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, S, D]
        scores = q @ k.transpose(-1, -2) / math.sqrt(attn.head_dim)
        if attention_mask is not None:
            scores = scores.masked_fill(~attention_mask, float("-inf"))
        probs = scores.softmax(dim=-1)
        self.probs.append(probs)
        out = (probs @ v).transpose(1, 2).flatten(2, 3)
        return attn.to_out(torch.cat([out, attn.mlp_act_fn(mlp)], dim=-1))


def test_knockout_zeroes_blocked_probabilities_and_rows_sum_to_one(tiny_model, edit):
    attn = tiny_model.transformer.single_transformer_blocks[0].attn
    stock = attn.processor
    layout = tiny_model.layout(edit)
    ko = mi.Knockout("ref", "text.padding", sites=("single.0",))
    clean_ko = tiny_model.generate(edit, [ko])  # stock processor + our mask (SDPA)
    probe = _ProbeProcessor()
    attn.set_processor(probe)
    try:
        probed = tiny_model.generate(edit, [ko])
    finally:
        attn.set_processor(stock)
    np.testing.assert_allclose(probed.array, clean_ko.array, atol=1e-5)  # SDPA + mask == hand softmax
    assert len(probe.probs) == edit.steps
    for p in probe.probs:
        dest, src = layout["text.padding"], layout["ref"]
        assert torch.count_nonzero(p[:, :, dest][:, :, :, src]) == 0
        torch.testing.assert_close(p.sum(-1), torch.ones_like(p.sum(-1)))
        other = torch.ones(layout.seq_len, dtype=torch.bool)
        other[dest] = False
        assert torch.all(p[:, :, other][:, :, :, src] > 0)  # only the blocked queries lose the reference


def test_knockout_that_leaves_a_query_with_no_keys_is_rejected(tiny_model, edit):
    everything = [mi.Knockout(g, "text.content") for g in ("text", "image", "ref")]
    with pytest.raises(ValueError, match="no key to attend to"):
        tiny_model.generate(edit, everything)


def test_intervene_works_under_autograd(tiny_model, edit):
    """Patches and knockouts stay differentiable (organisms train with wiring applied)."""
    layout = tiny_model.layout(edit)
    t = tiny_model.transformer
    x = torch.randn(1, layout.n_image + layout.n_ref, 16)
    enc = torch.randn(1, layout.text_len, 48, requires_grad=True)
    ids_img = torch.zeros(1, layout.n_image + layout.n_ref, 4)
    ids_txt = torch.zeros(1, layout.text_len, 4)
    with Intervene(t, layout, [mi.Knockout("ref", "image"), mi.Patch("single.0", torch.zeros(len(layout["text.pad"]), 32), "text.pad")]):
        out = t(hidden_states=x, encoder_hidden_states=enc, timestep=torch.tensor([0.5]), img_ids=ids_img, txt_ids=ids_txt,
                return_dict=False)[0]
    out.sum().backward()
    assert enc.grad is not None and torch.isfinite(enc.grad).all()
