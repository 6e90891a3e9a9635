"""The fast engine paths equal their reference paths (issue 9). Timings live in bench/, never here.

- query-splitting and flex knockouts == dense-mask knockouts;
- truncating reference drop == masking reference drop, at every cutoff;
- captures copy only the selected rows and never alias the live activations.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mechinterp as mi
from mechinterp.engine.attention import allowed_mask
from mechinterp.engine.fast_attention import Blocked, SplitPlan, flex_available
from mechinterp.engine.hooks import Intervene, offload

TOL = 1e-5  # float32 on CPU: different reduction orders, same maths

KNOCKOUTS = [
    [mi.Knockout("ref", "text")],
    [mi.Knockout("ref", "text.padding")],
    [mi.Knockout("ref", "text.content", sites=("double.1",))],
    [mi.Knockout("ref", "image", steps=(1, 2))],
    [mi.Knockout("text.content", "image", sites=("single.0", "single.1"))],
    [mi.Knockout("image", "ref"), mi.Knockout("text.pad", "text.content", sites=(0, 3), steps=0)],
    [mi.Knockout("ref", "text.template"), mi.Knockout("ref", "image")],
]
_FLEX = pytest.mark.skipif(not flex_available(), reason="torch.nn.attention.flex_attention is not in this torch build")
#: split on every setting; flex (slow unfused reference kernel on CPU) on two of them
CASES = [pytest.param(ks, "split", id="split-" + "+".join(k.describe() for k in ks)) for ks in KNOCKOUTS]
CASES += [pytest.param(KNOCKOUTS[i], "flex", id="flex-" + "+".join(k.describe() for k in KNOCKOUTS[i]), marks=_FLEX)
          for i in (1, 5)]


def _run(model, edit, items, **modes):
    """Image and firing counts of one raw pipeline run under ``Intervene(..., **modes)``."""
    with Intervene(model.transformer, model.layout(edit), items, table=model.table, n_steps=edit.steps, **modes) as ctx:
        image = model.pipe(**model.pipeline_kwargs(edit), output_type="np").images[0]
    return image, ctx.fired


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
@pytest.mark.parametrize("items, mode", CASES)
def test_fast_knockouts_equal_the_dense_mask_reference(tiny_model, edit, items, mode):
    dense, dense_fired = _run(tiny_model, edit, items, knockout_mode="dense")
    fast, fast_fired = _run(tiny_model, edit, items, knockout_mode=mode)
    np.testing.assert_allclose(fast, dense, atol=TOL, rtol=0)
    assert fast_fired == dense_fired and fast_fired


def test_default_mode_is_split_and_takes_no_dense_mask(tiny_model, edit):
    seen, inside = [], []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    t = tiny_model.transformer

    def spy(*args, **kwargs):
        if inside:  # the text encoder's own (causal) masks are not ours
            seen.append(kwargs.get("attn_mask"))
        return sdpa(*args, **kwargs)

    hooks = [t.register_forward_pre_hook(lambda m, a: inside.append(1)), t.register_forward_hook(lambda m, a, o: inside.clear())]
    torch.nn.functional.scaled_dot_product_attention = spy
    try:
        tiny_model.generate(edit, [mi.Knockout("ref", "text")])
    finally:
        torch.nn.functional.scaled_dot_product_attention = sdpa
        for h in hooks:
            h.remove()
    assert seen and all(m is None for m in seen)


@settings(max_examples=25, deadline=None)
@given(data=st.data(), n=st.integers(4, 24))
def test_split_plan_equals_masked_attention(data, n):
    """Random edge sets on a random sequence: SplitPlan == SDPA with the dense boolean mask."""
    gen = torch.Generator().manual_seed(n)
    edges = []
    for i in range(data.draw(st.integers(1, 3))):
        src = sorted(data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n // 2)))
        dst = sorted(data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n)))
        edges.append(Blocked(torch.tensor(src), torch.tensor(dst), f"e{i}"))
    q, k, v = (torch.randn(2, n, 3, 8, generator=gen) for _ in range(3))
    try:
        mask = allowed_mask(edges, n)
    except ValueError:
        with pytest.raises(ValueError, match="no key to attend to"):
            SplitPlan(edges, n)
        return
    ref = torch.nn.functional.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v)), attn_mask=mask)
    out = SplitPlan(edges, n).attend(q, k, v)
    torch.testing.assert_close(out, ref.transpose(1, 2), atol=TOL, rtol=0)


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_a_callers_mask_is_merged_on_the_dense_path(tiny_model, edit, kind):
    """With a mask already given, the knockout processor merges it (dense) whatever its mode."""
    block = tiny_model.transformer.single_transformer_blocks[0]
    layout = tiny_model.layout(edit)
    S, dim = layout.seq_len, tiny_model.transformer.inner_dim
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(1, S, dim, generator=gen)
    rotary = tiny_model.transformer.pos_embed(torch.zeros(S, 4))
    extra = torch.ones(1, 1, S, S, dtype=torch.bool)
    extra[..., layout["image"][:7]] = False
    given = extra if kind == "bool" else torch.zeros(1, 1, S, S).masked_fill(~extra, float("-inf"))
    ko = mi.Knockout("ref", "text", sites=("single.0",))
    with Intervene(tiny_model.transformer, layout, [ko], table=tiny_model.table, knockout_mode="split") as ctx:
        ctx.step = 0
        out = block.attn(hidden, attention_mask=given, image_rotary_emb=rotary)
    stock = block.attn.processor
    both = allowed_mask([Blocked(layout["ref"], layout["text"])], S) & extra
    ref = stock(block.attn, hidden, both, rotary)
    torch.testing.assert_close(out, ref, atol=TOL, rtol=0)


def _seq_lengths(model, edit, items, **modes):
    lengths = []
    hook = model.transformer.single_transformer_blocks[-1].register_forward_hook(lambda m, a, o: lengths.append(o.shape[1]))
    try:
        image, fired = _run(model, edit, items, **modes)
    finally:
        hook.remove()
    return image, fired, lengths


@pytest.mark.parametrize("steps", [None, (1, 2)])
def test_truncating_ref_drop_equals_masking_ref_drop_at_every_cutoff(tiny_model, edit, steps):
    layout = tiny_model.layout(edit)
    blocks = tiny_model.table.blocks
    for site in blocks:
        drop = [mi.RefDrop(site.name, steps=steps)]
        masked, masked_fired, full = _seq_lengths(tiny_model, edit, drop, ref_drop_mode="mask", knockout_mode="dense")
        cut, cut_fired, lengths = _seq_lengths(tiny_model, edit, drop)
        np.testing.assert_allclose(cut, masked, atol=TOL, rtol=0, err_msg=site.name)
        assert cut_fired == masked_fired, site.name
        assert full == [layout.seq_len] * edit.steps
        shortened = site.flat > 0  # the first block severs everything: masked, nothing to truncate after
        expect = [layout.seq_len - layout.n_ref if shortened and (steps is None or s in steps) else layout.seq_len
                  for s in range(edit.steps)]
        assert lengths == expect, site.name


def test_truncation_keeps_the_transformer_output_shape(tiny_model, edit):
    layout = tiny_model.layout(edit)
    t = tiny_model.transformer
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, layout.n_image + layout.n_ref, 16, generator=gen)
    enc = torch.randn(1, layout.text_len, 48, generator=gen)
    ids_img = torch.randint(0, 8, (1, layout.n_image + layout.n_ref, 4), generator=gen)
    kwargs = dict(hidden_states=x, encoder_hidden_states=enc, timestep=torch.tensor([0.5]), img_ids=ids_img,
                  txt_ids=torch.zeros(1, layout.text_len, 4), return_dict=False)
    outs = {}
    for mode in ("mask", "truncate"):
        with torch.no_grad(), Intervene(t, layout, [mi.RefDrop("double.1")], ref_drop_mode=mode):
            outs[mode] = t(**kwargs)[0]
    assert outs["truncate"].shape == outs["mask"].shape == (1, layout.n_image + layout.n_ref, 16)
    torch.testing.assert_close(outs["truncate"][:, : layout.n_image], outs["mask"][:, : layout.n_image], atol=TOL, rtol=0)
    assert torch.count_nonzero(outs["truncate"][:, layout.n_image:]) == 0


def test_truncation_falls_back_to_masking_when_reference_rows_are_read_later(tiny_model, edit):
    items = [mi.RefDrop("double.1"), mi.Capture("single.1", "ref", steps=0)]
    _, _, lengths = _seq_lengths(tiny_model, edit, items)
    assert lengths == [tiny_model.layout(edit).seq_len] * edit.steps
    g = tiny_model.generate(edit, items)
    assert g.captures[("single.1", 0)].shape[0] == tiny_model.layout(edit).n_ref


def test_capture_before_patch_at_one_site_keeps_the_unpatched_rows(tiny_model, edit):
    clean = tiny_model.generate(edit, capture=["single.0"])
    zeros = torch.zeros(len(tiny_model.layout(edit)["text"]), tiny_model.transformer.inner_dim)
    both = tiny_model.generate(edit, [mi.Capture("single.0", steps=0), mi.Patch("single.0", zeros)])
    assert torch.equal(both.captures[("single.0", 0)], clean.captures[("single.0", 0)])
    view = torch.arange(12.0).view(1, 3, 4)
    copy = offload(view[:, 1:])
    assert torch.equal(copy, view[:, 1:]) and copy.untyped_storage().data_ptr() != view.untyped_storage().data_ptr()


def test_knockout_rule_accepts_only_full_or_truncated_lengths(tiny_model, edit):
    """A knockout rule rejects a sequence that is neither the layout's nor its truncated length."""
    from mechinterp.engine.attention import KnockoutRule

    layout = tiny_model.layout(edit)
    rule = KnockoutRule("single.0", [], layout, lambda: 0, None, short=layout.n_ref)
    rule.check_length(layout.seq_len)
    rule.check_length(layout.seq_len - layout.n_ref)
    with pytest.raises(RuntimeError, match="has 3 tokens"):
        rule.check_length(3)


def test_plans_cached_during_inference_serve_autograd_runs(tiny_model, edit):
    """Split plans are shared across contexts; one built under inference mode must still work
    when an organism trains with the same knockout under autograd."""
    ko = mi.Knockout("ref", "text.padding")
    tiny_model.generate(edit, [ko])  # builds and caches the plan under torch.inference_mode
    layout = tiny_model.layout(edit)
    t = tiny_model.transformer
    enc = torch.randn(1, layout.text_len, 48, requires_grad=True)
    with Intervene(t, layout, [ko]):
        out = t(hidden_states=torch.randn(1, layout.n_image + layout.n_ref, 16), encoder_hidden_states=enc,
                timestep=torch.tensor([0.5]), img_ids=torch.zeros(1, layout.n_image + layout.n_ref, 4),
                txt_ids=torch.zeros(1, layout.text_len, 4), return_dict=False)[0]
    out.sum().backward()
    assert enc.grad is not None and torch.isfinite(enc.grad).all()


def test_modes_are_constructor_arguments_not_shared_state(tiny_model, edit):
    """A model's modes are set when it is made (or on a copy by ``with_modes``), never by mutating a shared
    class attribute: the original keeps its own, the copy shares the pipeline, and a wrong mode is named."""
    dense = tiny_model.with_modes(knockout_mode="dense", ref_drop_mode="mask")
    assert (dense.knockout_mode, dense.ref_drop_mode) == ("dense", "mask")
    assert (tiny_model.knockout_mode, tiny_model.ref_drop_mode) == ("auto", "truncate")
    assert dense.pipe is tiny_model.pipe and mi.Model(tiny_model.pipe, knockout_mode="split").knockout_mode == "split"
    with pytest.raises(AttributeError):
        tiny_model.knockout_mode = "dense"
    with pytest.raises(ValueError, match="unknown ref_drop_mode 'cut'"):
        mi.Model(tiny_model.pipe, ref_drop_mode="cut")
    with pytest.raises(ValueError, match="'fast'"):
        tiny_model.with_modes(knockout_mode="fast")
    ko = [mi.Knockout("ref", "text.padding")]
    np.testing.assert_allclose(dense.generate(edit, ko).array, tiny_model.generate(edit, ko).array, atol=1e-5, rtol=0)
