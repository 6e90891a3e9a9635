"""Generation invariants that the maths gives exactly: reruns, raw pipeline, self-patching, isolation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mechinterp as mi
from mechinterp.engine.layout import TEXT_GROUPS

GROUPS_WITH_REF = ("text", "text.content", "text.padding", "text.template", "text.pad", "image", "ref")


def test_two_runs_are_bit_identical(tiny_model, edit):
    a, b = tiny_model.generate(edit), tiny_model.generate(edit)
    assert np.array_equal(a.array, b.array)
    assert a.image.tobytes() == b.image.tobytes()


def test_no_interventions_equals_raw_pipeline(tiny_model, edit):
    ours = tiny_model.generate(edit)
    raw = tiny_model.pipe(**tiny_model.pipeline_kwargs(edit), output_type="np").images[0]
    assert np.array_equal(ours.array, raw)
    raw_pil = tiny_model.pipe(**tiny_model.pipeline_kwargs(edit)).images[0]
    assert ours.image.tobytes() == raw_pil.tobytes()


def test_prompt_is_encoded_once_and_memo_is_bounded(tiny_model, edit, monkeypatch):
    """A prompt's embedding is memoised (the text encoder runs once for it) and equals what the
    pipeline encodes itself; the memo drops its oldest prompts past ``PROMPT_MEMO_BYTES``."""
    import mechinterp.engine.model as model_mod

    tiny_model.prompt_memo.clear()
    calls = []
    handle = tiny_model.pipe.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        first = tiny_model.generate(edit)
        again = tiny_model.generate(edit.replace(seed=edit.seed + 1))
        assert len(calls) == 1 and len(tiny_model.prompt_memo) == 1
        raw = tiny_model.pipe(**tiny_model.pipeline_kwargs(edit), output_type="np").images[0]
        assert np.array_equal(first.array, raw) and len(calls) == 2  # the raw call encodes for itself
        assert not np.array_equal(first.array, again.array)
        one = next(iter(tiny_model.prompt_memo.values()))
        monkeypatch.setattr(model_mod, "PROMPT_MEMO_BYTES", 2 * one.numel() * one.element_size())
        for i in range(4):
            tiny_model.prompt_embeds([f"{edit.text} {i}"])
        assert [k[0] for k in tiny_model.prompt_memo] == [f"{edit.text} 2", f"{edit.text} 3"]
    finally:
        handle.remove()
        tiny_model.prompt_memo.clear()


def test_different_seeds_differ(tiny_model, edit):
    assert not np.array_equal(tiny_model.generate(edit).array, tiny_model.generate(edit.replace(seed=4)).array)


@pytest.mark.parametrize("group", GROUPS_WITH_REF)
def test_self_patch_is_identity_at_every_site(tiny_model, edit, group):
    sites = [s for s in tiny_model.sites if not (s == "embed" and group not in TEXT_GROUPS)]
    clean = tiny_model.generate(edit, capture=[mi.Capture(s, group) for s in sites])
    for site in sites:
        patched = tiny_model.generate(edit, [mi.Patch(site, clean.captures, group)])
        assert np.array_equal(patched.array, clean.array), site


def test_self_patch_with_a_subset_of_a_full_text_capture(tiny_model, edit):
    clean = tiny_model.generate(edit, capture=["single.0"])
    for group in ("text.padding", "text.content", "text.pad"):
        patched = tiny_model.generate(edit, [mi.Patch("single.0", clean.captures, group)])
        assert np.array_equal(patched.array, clean.array), group


def test_patching_another_runs_values_changes_the_image(tiny_model, edit, solid):
    other = edit.replace(reference=solid((30, 30, 220)), seed=9)
    src = tiny_model.generate(other, capture=["double.1"])
    clean = tiny_model.generate(edit)
    patched = tiny_model.generate(edit, [mi.Patch("double.1", src.captures, "text")])
    assert not np.array_equal(patched.array, clean.array)


def test_cutting_the_reference_off_equals_no_reference(tiny_model, edit):
    cut = [mi.Knockout("ref", "image"), mi.Knockout("ref", "text"), mi.Knockout("image", "ref"), mi.Knockout("text", "ref")]
    isolated = tiny_model.generate(edit, cut)
    no_ref = tiny_model.generate(edit.replace(reference=None))
    np.testing.assert_allclose(isolated.array, no_ref.array, atol=1e-5)


def test_ref_drop_changes_with_cutoff(tiny_model, edit):
    blocks = [s.name for s in tiny_model.table.blocks]
    first = tiny_model.generate(edit, [mi.RefDrop(blocks[0])])
    last = tiny_model.generate(edit, [mi.RefDrop(blocks[-1])])
    assert not np.array_equal(first.array, last.array)


def test_ref_drop_before_the_first_block_equals_no_reference(tiny_model, edit):
    dropped = tiny_model.generate(edit, [mi.RefDrop("embed")])
    no_ref = tiny_model.generate(edit.replace(reference=None))
    np.testing.assert_allclose(dropped.array, no_ref.array, atol=1e-5)


def test_ref_drop_equals_its_hand_written_schedule(tiny_model, edit):
    """RefDrop(X) ≡ Knockout ref→image on the blocks before X, every reference edge cut from X on."""
    blocks = [s.name for s in tiny_model.table.blocks]
    for i, cutoff in enumerate(blocks):
        schedule = [mi.Knockout("ref", "image", tuple(blocks[:i]))] if i else []
        schedule += [mi.Knockout(s, d, tuple(blocks[i:]))
                     for s, d in [("ref", "image"), ("ref", "text"), ("image", "ref"), ("text", "ref")]]
        a = tiny_model.generate(edit, [mi.RefDrop(cutoff)])
        b = tiny_model.generate(edit, schedule)
        np.testing.assert_allclose(a.array, b.array, atol=1e-5, err_msg=cutoff)


def test_ref_drop_at_the_first_block_equals_no_reference(tiny_model, edit):
    dropped = tiny_model.generate(edit, [mi.RefDrop(tiny_model.table.blocks[0].name)])
    no_ref = tiny_model.generate(edit.replace(reference=None))
    np.testing.assert_allclose(dropped.array, no_ref.array, atol=1e-5)


def test_flat_index_and_name_are_the_same_site(tiny_model, edit):
    a = tiny_model.generate(edit, capture=[2])
    b = tiny_model.generate(edit, capture=["single.0"])
    assert torch.equal(a.captures[("single.0", 0)], b.captures[("single.0", 0)])


def test_knockout_changes_the_image(tiny_model, edit):
    clean = tiny_model.generate(edit)
    ko = tiny_model.generate(edit, [mi.Knockout("ref", "text")])
    assert not np.array_equal(clean.array, ko.array)


def test_captures_have_one_row_per_token(tiny_model, edit):
    layout = tiny_model.layout(edit)
    g = tiny_model.generate(edit, capture=[mi.Capture("double.0", "image", steps=(0, 2)), mi.Capture("embed", "text.content")])
    assert set(g.captures) == {("double.0", 0), ("double.0", 2), ("embed", 0), ("embed", 1), ("embed", 2), ("embed", 3)}
    assert g.captures[("double.0", 0)].shape == (layout.n_image, tiny_model.transformer.inner_dim)
    assert g.captures[("embed", 1)].shape[0] == len(layout["text.content"])


def test_embed_capture_is_constant_over_steps(tiny_model, edit):
    g = tiny_model.generate(edit, capture=["embed"])
    assert torch.equal(g.captures[("embed", 0)], g.captures[("embed", 3)])


def test_sampling_is_explicit_and_part_of_the_cache_key(tiny_model):
    """The paper's sampling (guidance 1.0, no CFG) is passed, not inherited from the pipeline's
    default (4.0); the noise generator sits on the model's device unless asked for the CPU."""
    on_device, on_cpu = tiny_model, mi.Model(tiny_model.pipe, generator="cpu")
    edit = mi.Edit("draw a ball", seed=3, height=64, width=64)
    kwargs = on_device.pipeline_kwargs(edit)
    assert kwargs["guidance_scale"] == 1.0 and kwargs["guidance_scale"] != _pipeline_default("guidance_scale")
    assert kwargs["generator"].device == on_device.device
    assert on_cpu.pipeline_kwargs(edit)["generator"].device.type == "cpu"
    assert on_device.sampling["cfg"] is False and on_device.sampling["guidance_scale"] == 1.0
    assert on_device.sampling_key() == f"noise={on_device.device.type};guidance=1"
    # the same seed draws the same noise from a generator on the same device type
    a = torch.randn(4, generator=on_device.noise(3), device=on_device.noise_device)
    assert torch.equal(a.cpu(), torch.randn(4, generator=torch.Generator(on_device.device).manual_seed(3),
                                            device=on_device.device).cpu())
    with pytest.raises(ValueError, match="generator 'gpu': expected one of device, cpu"):
        mi.Model(tiny_model.pipe, generator="gpu")


def _pipeline_default(name):
    import inspect

    from diffusers import Flux2KleinPipeline

    return inspect.signature(Flux2KleinPipeline.__call__).parameters[name].default
