"""Model identity by content: folders by their files, hub models by their snapshot commit, in-memory
models by every tensor; one changed weight is another model with its own generations."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import mechinterp as mi
from mechinterp.engine import identity
from mechinterp.engine.identity import ModelSource, folder_digest, tensor_digest
from mechinterp.suite.gencache import CachingModel, GenerationCache, model_fingerprint
from mechinterp.suite.models import resolve_model
from mechinterp.testing.tiny import save_pipeline, tiny_pipeline

WEIGHTS = "transformer/diffusion_pytorch_model.safetensors"


def _reference_digest(data: bytes) -> tuple[int, int]:
    """The polynomial hashes of the module docstring, computed naively in Python on the host."""
    out = []
    for prime, base in identity._HASHES:
        acc, power = 0, 1
        for b in data:
            acc = (acc + b * power) % prime
            power = power * base % prime
        out.append(acc)
    return out[0], out[1]


@given(st.binary(min_size=1, max_size=300), st.integers(0, 5))
def test_tensor_digest_is_the_polynomial_hash_of_the_bytes_in_any_chunking(data, log_chunk):
    t = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    expected = _reference_digest(data)
    chunk = identity.CHUNK_BYTES
    try:
        identity.CHUNK_BYTES = 1 << log_chunk  # chunks of 1..32 bytes: the offsets must stitch exactly
        assert tensor_digest(t) == expected
    finally:
        identity.CHUNK_BYTES = chunk
    assert tensor_digest(t) == expected


@given(st.integers(0, 4095), st.integers(1, 255))
def test_any_one_byte_change_changes_the_tensor_digest(position, delta):
    t = torch.arange(1024, dtype=torch.float32)
    raw = t.view(torch.uint8).clone()
    raw[position] = (int(raw[position]) + delta) % 256
    assert tensor_digest(raw.view(torch.float32)) != tensor_digest(t)


def test_in_memory_identity_follows_every_weight():
    pipe = tiny_pipeline(seed=0)
    before = mi.Model(pipe).identity
    assert before.startswith("memory:") and mi.Model(tiny_pipeline(seed=0)).identity == before
    with torch.no_grad():
        p = pipe.vae.decoder.conv_out.weight  # not the transformer: every module counts
        p.view(-1)[7] = torch.nextafter(p.view(-1)[7], torch.tensor(float("inf")))  # one ulp of one weight
    assert mi.Model(pipe).identity != before


def test_folder_identity_is_its_files_not_its_path(tmp_path):
    shipped = Path(resolve_model("padding-routed"))
    copy = tmp_path / "copy"
    shutil.copytree(shipped, copy)
    original, copied = mi.load(shipped, device="cpu"), mi.load(copy, device="cpu")
    assert original.source == ModelSource("folder", str(shipped.resolve()))
    assert copied.source == ModelSource("folder", str(copy.resolve()))
    assert copied.identity == original.identity == "folder:" + folder_digest(shipped)
    assert model_fingerprint(copied) == model_fingerprint(original)


def test_one_changed_weight_of_a_copied_organism_is_a_new_model_with_fresh_generations(tmp_path):
    """The bug this guards against: a fine-tuned copy judged on the old model's cached images."""
    from safetensors.torch import load_file, save_file

    shipped = Path(resolve_model("padding-routed"))
    copy = tmp_path / "tuned"
    shutil.copytree(shipped, copy)
    weights = load_file(copy / WEIGHTS)
    name = "proj_out.weight"
    weights[name][0, 0] *= 1.5
    save_file(weights, copy / WEIGHTS, metadata={"format": "pt"})

    cache = GenerationCache(tmp_path / "cache")
    old, new = (CachingModel(mi.load(p, device="cpu"), cache) for p in (shipped, copy))
    assert old.fingerprint != new.fingerprint
    edit = mi.Edit("draw a ball in this color", reference=_red(), seed=0, height=64, width=64, steps=4)
    a = old.generate(edit)
    b = new.generate(edit)
    assert (cache.misses, cache.hits, new.generated) == (2, 0, 1)  # the tuned model generated its own image
    assert not np.array_equal(a.array, b.array)
    again = CachingModel(mi.load(copy, device="cpu"), cache).generate(edit)  # same files again: a cache hit
    assert cache.hits == 1 and np.array_equal(again.array, b.array)


def _red():
    from PIL import Image

    return Image.new("RGB", (64, 64), (220, 30, 30))


def _fake_hub_cache(root, repo_id: str, commit: str, pipe) -> None:
    """A Hugging Face cache entry as the hub library lays it out: refs/main -> snapshots/<commit>/."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    save_pipeline(pipe, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)


def test_hub_model_is_its_snapshot_commit_without_reading_weights(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    first, second = "a" * 40, "b" * 40
    _fake_hub_cache(tmp_path, "tiny-org/klein", first, tiny_pipeline(seed=0))
    model = mi.load("tiny-org/klein", device="cpu")
    assert model.source == ModelSource("hub", "tiny-org/klein", first)
    monkeypatch.setattr(identity, "tensor_digest", lambda t: pytest.fail("a hub model's identity read a tensor"))
    assert model.identity == f"hub:tiny-org/klein@{first}"
    _fake_hub_cache(tmp_path, "tiny-org/klein", second, tiny_pipeline(seed=1))  # a new revision on main
    newer = mi.load("tiny-org/klein", device="cpu")
    assert newer.source.revision == second and model_fingerprint(newer) != model_fingerprint(model)


def test_an_in_memory_identity_does_not_change_when_the_model_generates(edit):
    """Tokenizing with padding/truncation sets them on the fast tokenizer's backend: that is call state,
    not the model, so the identity (and every cache key) is the same before and after a generation."""
    pipe = tiny_pipeline(seed=0)
    before = identity.pipeline_digest(pipe)
    mi.Model(pipe).generate(edit)
    assert pipe.tokenizer.backend_tokenizer.truncation is not None  # the call did leave its state behind
    assert identity.pipeline_digest(pipe) == before
