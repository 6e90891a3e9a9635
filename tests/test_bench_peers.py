"""The bench's peers do the engine's job (issue 18): plain hooks, nnsight and the authors' additive
masks capture the same rows, give the same patched and knocked-out images, and leave the model as
it was. Their speed is measured in bench/, never asserted here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mechinterp as mi
from mechinterp.bench import peers
from mechinterp.bench.cost import KO_SETTINGS
from mechinterp.bench.settings import bench_sites

pytest.importorskip("nnsight", reason="nnsight (the bench extra) is not installed: pip install -e '.[bench]'")


@pytest.fixture(scope="module")
def site(tiny_model):
    """The bench's colour site on the tiny model, its module and the text length."""
    name, _ = bench_sites(tiny_model.table)
    return name, tiny_model.table.module(tiny_model.transformer, name), tiny_model.text_len


def _raw(model, edit, context):
    with torch.inference_mode(), context:
        return model.pipe(**model.pipeline_kwargs(edit), output_type="np").images[0]


def _source(model, edit, solid, name):
    return model.generate(edit.replace(reference=solid((20, 200, 20)), seed=5), capture=[mi.Capture(name, "text")])


def test_hook_and_nnsight_captures_equal_the_engines_at_every_step(tiny_model, edit, site):
    name, module, n_text = site
    clean = tiny_model.generate(edit, capture=[mi.Capture(name, "text")])
    with peers.hooks_capture(module, n_text) as hooked:
        image = _raw(tiny_model, edit, torch.no_grad())
    nn = peers.NnsightPipeline(tiny_model.pipe, module, n_text)
    traced, result = nn.capture(dict(tiny_model.pipeline_kwargs(edit), output_type="np"), edit.steps)
    assert len(hooked) == len(traced) == edit.steps
    for s in range(edit.steps):
        assert torch.equal(hooked[s][0], clean.captures[(name, s)]) and torch.equal(traced[s][0], clean.captures[(name, s)])
    assert np.array_equal(image, clean.array) and np.array_equal(result.images[0], clean.array)


def test_hook_and_nnsight_patches_give_the_engines_image(tiny_model, edit, solid, site):
    name, module, n_text = site
    source = _source(tiny_model, edit, solid, name)
    values = [source.captures[(name, s)] for s in range(edit.steps)]
    engine = tiny_model.generate(edit, [mi.Patch(name, source.captures, "text")])
    hooked = _raw(tiny_model, edit, peers.hooks_patch(tiny_model.transformer, module, n_text, values))
    nn = peers.NnsightPipeline(tiny_model.pipe, module, n_text)
    traced = nn.patch(dict(tiny_model.pipeline_kwargs(edit), output_type="np"), edit.steps, values)
    assert np.array_equal(hooked, engine.array) and np.array_equal(traced.images[0], engine.array)
    assert not np.array_equal(engine.array, tiny_model.generate(edit).array)  # the patch acts


def test_hooks_patch_a_double_blocks_text_stream(tiny_model, edit, solid):
    source = _source(tiny_model, edit, solid, "double.1")
    values = [source.captures[("double.1", s)] for s in range(edit.steps)]
    engine = tiny_model.generate(edit, [mi.Patch("double.1", source.captures, "text")])
    module = tiny_model.table.module(tiny_model.transformer, "double.1")
    hooked = _raw(tiny_model, edit, peers.hooks_patch(tiny_model.transformer, module, 48, values))
    assert np.array_equal(hooked, engine.array)


@pytest.mark.parametrize("ko", KO_SETTINGS)
def test_the_authors_additive_mask_equals_the_engines_dense_mode(tiny_model, edit, ko):
    src, dst = ko.split("->")
    dense = tiny_model.with_modes(knockout_mode="dense").generate(edit, [mi.Knockout(src, dst)])
    stock = dict(tiny_model.transformer.attn_processors)
    authors = _raw(tiny_model, edit, peers.additive_mask_knockout(tiny_model.transformer, tiny_model.layout(edit), src, dst))
    assert np.array_equal(authors, dense.array)
    assert not np.array_equal(authors, tiny_model.generate(edit).array)
    assert {k: type(v) for k, v in tiny_model.transformer.attn_processors.items()} == {k: type(v) for k, v in stock.items()}


def test_additive_mask_is_minus_infinity_exactly_on_the_blocked_edges(tiny_model, edit):
    layout = tiny_model.layout(edit)
    mask = peers.additive_mask(layout, "ref", "text.padding", torch.bfloat16, "cpu")[0, 0]
    blocked = torch.zeros(layout.seq_len, layout.seq_len, dtype=torch.bool)
    blocked[layout["text.padding"].unsqueeze(1), layout["ref"].unsqueeze(0)] = True
    assert mask.dtype == torch.bfloat16 and torch.equal(mask == float("-inf"), blocked) and torch.all(mask[~blocked] == 0)


def test_the_authors_processors_come_back_off_after_an_exception(tiny_model, edit):
    before = {k: type(v) for k, v in tiny_model.transformer.attn_processors.items()}
    with pytest.raises(RuntimeError, match="boom"):
        with peers.additive_mask_knockout(tiny_model.transformer, tiny_model.layout(edit), "ref", "text"):
            raise RuntimeError("boom")
    assert {k: type(v) for k, v in tiny_model.transformer.attn_processors.items()} == before


def test_nnsight_wraps_a_twin_that_shares_the_weights_and_leaves_the_model_untouched(tiny_model, site):
    name, module, n_text = site
    peers.NnsightPipeline(tiny_model.pipe, module, n_text)
    peers.NnsightTransformer(tiny_model.transformer, module, n_text)
    assert all("forward" not in m.__dict__ for m in tiny_model.pipe.transformer.modules())
    assert all("forward" not in m.__dict__ for m in tiny_model.pipe.text_encoder.modules())
    copy = peers.twin(tiny_model.transformer)
    assert copy is not tiny_model.transformer
    assert all(a is b for a, b in zip(copy.parameters(), tiny_model.transformer.parameters(), strict=True))


def test_nnsight_transformer_trace_captures_and_patches_like_the_engine(site):
    from mechinterp.bench.shapes import synthetic_inputs, synthetic_layout
    from mechinterp.engine.hooks import Intervene
    from mechinterp.testing.tiny import tiny_pipeline

    transformer = tiny_pipeline(seed=0).transformer
    config = dict(transformer.config)
    layout = synthetic_layout(48, 64, 64)
    inputs = synthetic_inputs(config, layout, "cpu", torch.float32)
    name, _, n_text = site
    module = mi.SiteTable.for_transformer(transformer).module(transformer, name)
    nn = peers.NnsightTransformer(transformer, module, n_text)
    values = torch.randn(n_text, transformer.inner_dim, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        with Intervene(transformer, layout, [mi.Capture(name, "text")]) as ctx:
            clean = transformer(**inputs)[0]
        with Intervene(transformer, layout, [mi.Patch(name, values, "text")]):
            patched = transformer(**inputs)[0]
        traced = nn.capture(inputs, 1)
        traced_patch = nn.patch(inputs, 1, values)[0][0]
    assert torch.equal(traced[0][0], ctx.captures[(name, 0)])
    assert torch.equal(traced_patch, patched) and not torch.equal(patched, clean)


def test_nnsight_drives_a_saved_pipeline_through_its_own_loader(tmp_path, edit):
    """nnsight's public diffusers path (a folder): the same text rows as the engine on the reloaded model."""
    from nnsight.modeling.diffusion import DiffusionModel

    from mechinterp.testing.tiny import tiny_pipeline

    tiny_pipeline(seed=0, save_to=tmp_path / "tiny")
    model = mi.load(tmp_path / "tiny", device="cpu")
    clean = model.generate(edit, capture=[mi.Capture("single.0", "text")])
    dm = DiffusionModel(str(tmp_path / "tiny"), dispatch=True)
    dm.pipeline.set_progress_bar_config(disable=True)
    with dm.generate(**dict(model.pipeline_kwargs(edit), output_type="np")) as tracer:
        rows = [].save()
        for _ in tracer.iter[0:edit.steps]:
            rows.append(dm.transformer.single_transformer_blocks[0].output[:, : model.text_len].clone())
        result = tracer.result.save()
    # two implementations of the same sums (diffusers' processors under nnsight, the engine's own):
    # equal up to float reordering, which depends on the CPU's kernels (exact on some machines)
    for s in range(edit.steps):
        torch.testing.assert_close(rows[s][0], clean.captures[("single.0", s)], atol=1e-6, rtol=0)
    np.testing.assert_allclose(result.images[0], clean.array, atol=1e-6, rtol=0)
