"""Loading: save_pretrained → mechinterp.load round trip, and the errors for bad paths."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mechinterp as mi
from mechinterp.testing.tiny import tiny_pipeline


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    pipe = tiny_pipeline(seed=0, save_to=path)
    return path, mi.Model(pipe)


def test_saved_pipeline_reloads_identically(saved, edit):
    path, original = saved
    loaded = mi.load(path, device="cpu")
    assert loaded.sites == original.sites and loaded.text_len == original.text_len == 48
    assert loaded.model_id == str(path)
    assert np.array_equal(loaded.generate(edit).array, original.generate(edit).array)
    assert (path / "transformer" / "diffusion_pytorch_model.safetensors").exists()


def test_wiring_in_the_metadata_is_applied(saved, edit, tmp_path):
    path, original = saved
    meta = json.loads((path / "mechinterp.json").read_text())
    meta["wiring"] = [mi.Knockout("ref", "text").to_dict()]
    wired_dir = tmp_path / "wired"
    original.pipe.save_pretrained(wired_dir)
    (wired_dir / "mechinterp.json").write_text(json.dumps(meta))
    wired = mi.load(wired_dir, device="cpu")
    assert wired.wiring == (mi.Knockout("ref", "text"),)
    assert np.array_equal(wired.generate(edit).array, original.generate(edit, [mi.Knockout("ref", "text")]).array)


def test_plain_save_pretrained_keeps_the_text_length(saved, edit, tmp_path):
    """A diffusers ``save_pretrained`` (no mechinterp.json) reloads as the same model: the metadata rides in
    the pipeline's config, so the reload uses text length 48, not the default 512, and draws the same image."""
    from mechinterp.engine.meta import META_FILE, ModelMeta

    path, original = saved
    plain = tmp_path / "plain"
    original.pipe.save_pretrained(plain)
    assert not (plain / META_FILE).exists()
    assert ModelMeta.read(plain) == ModelMeta(max_sequence_length=48, default_size=64)
    reloaded = mi.load(plain, device="cpu")
    assert reloaded.text_len == 48 and reloaded.meta.size == 64
    assert np.array_equal(reloaded.generate(edit).array, original.generate(edit).array)


def test_model_save_writes_its_metadata_beside_the_weights(saved, tmp_path):
    from mechinterp.engine.meta import ModelMeta

    path, _ = saved
    wired = mi.Model(tiny_pipeline(seed=0), wiring=[mi.Knockout("ref", "text")], model_id="mine")
    wired.save(tmp_path / "m")
    meta = ModelMeta.read(tmp_path / "m")
    assert meta.wiring == (mi.Knockout("ref", "text").to_dict(),) and meta.model_id == "mine"
    assert mi.load(tmp_path / "m", device="cpu").wiring == wired.wiring
    with pytest.raises(ValueError, match="mechinterp.json' is not valid JSON"):
        (tmp_path / "m" / "mechinterp.json").write_text("{")
        ModelMeta.read(tmp_path / "m")


def test_load_with_dtype(saved):
    path, _ = saved
    import torch

    assert mi.load(path, device="cpu", dtype="bfloat16").dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        mi.load(path, dtype="float8")


def test_unknown_local_path(tmp_path):
    with pytest.raises(ValueError, match="unknown model '.*nowhere'"):
        mi.load(tmp_path / "nowhere")


def test_folder_that_is_not_a_pipeline(tmp_path):
    with pytest.raises(ValueError, match="has no model_index.json"):
        mi.load(tmp_path)


def test_corrupt_weights_name_the_folder(saved, tmp_path):
    path, original = saved
    broken = tmp_path / "broken"
    original.pipe.save_pretrained(broken)
    (broken / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="could not be loaded"):
        mi.load(broken)


def test_unknown_hub_id_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ValueError, match="unknown model 'black-forest-labs/FLUX.2-klein-4B'.*Hugging Face cache"):
        mi.load("black-forest-labs/FLUX.2-klein-4B")
