"""References prepared per experiment as the authors do, and the tokens the pipeline makes of them.

Known answers: the authors' ``reference_tokens.jsonl`` (for 1,360 tasks the size their
knockout / lens / baseline runners hand the pipeline and its reference-token count),
checked from the task records and the manifest's native sizes alone; the pipeline's own
reference preprocessing (a tiny real ``Flux2KleinPipeline``) for the layout's count.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import mechinterp as mi
from mechinterp.claims import Claim, Experiment
from mechinterp.engine.layout import build_layout, reference_tokens
from mechinterp.tasks import Pair, Task, color_tasks
from mechinterp.tasks.authors import read_tasks_jsonl
from mechinterp.tasks.manifest import load_manifest
from mechinterp.tasks.references import prepare, prepared_size
from mechinterp.testing.tiny import build_tokenizer, tiny_pipeline

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "i2i-interp"
REFERENCE_TOKENS = REFERENCE / "protocol" / "reference_tokens.jsonl"
needs_protocol = pytest.mark.skipif(not REFERENCE_TOKENS.is_file(), reason=f"authors' protocol answers not at {REFERENCE_TOKENS}")
KLEIN_PATCH = 16  # FLUX.2-klein: VAE factor 8 x 2x2 patch
TOKENIZER = build_tokenizer()


def _native_size(task: Task):
    """The authors' file size from the shipped manifest (generated references: None, the task's)."""
    if not isinstance(task.reference, Path):
        return None
    return load_manifest().entry_for(task.metadata["reference_path"]).size


@needs_protocol
def test_reference_size_and_tokens_of_all_1360_tasks():
    rows = [json.loads(line) for line in REFERENCE_TOKENS.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) == 1360
    tasks = {t.task_id: t for t in color_tasks()}
    for bucket in {r["bucket"] for r in rows} - {"solid_color"}:
        tasks.update((t.task_id, t) for t in read_tasks_jsonl(REFERENCE / "tasks" / f"{bucket}.jsonl", bucket, REFERENCE))
    squashed_size = squashed_tokens = 0
    for row in rows:
        task = tasks[row["task_id"]]
        size = task.reference_size(_native_size(task))
        assert list(size) == row["reference_size"], row["task_id"]
        layout = build_layout(TOKENIZER, task.instruction, task.instruction, 512, task.height, task.width, size, KLEIN_PATCH)
        assert layout.n_ref == row["reference_tokens"], row["task_id"]
        squashed_size += size != (1024, 1024)
        squashed_tokens += layout.n_ref != 4096
    assert (squashed_size, squashed_tokens) == (850, 825)  # what squashing every reference to 1024² got wrong


def test_a_1872_by_2368_reference_is_3976_tokens():
    assert reference_tokens((1872, 2368), KLEIN_PATCH) == 3976
    assert prepared_size((1885, 2377), (1024, 1024), named=True, native_source=False) == (1872, 2368)


# -- the rule on images -----------------------------------------------------------------------

def _coordinates(w: int, h: int) -> Image.Image:
    """An image whose pixel (x, y) is (x mod 256, y mod 256, 0): crops and shifts are visible."""
    x = torch.arange(w).remainder(256).expand(h, w)
    y = torch.arange(h).remainder(256)[:, None].expand(h, w)
    return Image.fromarray(torch.stack([x, y, torch.zeros_like(x)], -1).to(torch.uint8).numpy())


@settings(max_examples=60, deadline=None)
@given(w=st.integers(16, 300), h=st.integers(16, 300), native_source=st.booleans())
def test_named_references_are_centre_cropped_to_16(w, h, native_source):
    out = prepare(_coordinates(w, h), (64, 64), named=True, native_source=native_source)
    assert out.size == (w - w % 16, h - h % 16)
    assert out.getpixel((0, 0)) == ((w % 16) // 2, (h % 16) // 2, 0)  # centred: the smaller half cut left/top
    right, bottom = (w % 16) // 2 + out.width - 1, (h % 16) // 2 + out.height - 1
    assert out.getpixel((out.width - 1, out.height - 1)) == (right % 256, bottom % 256, 0)


def test_named_reference_smaller_than_16_is_refused():
    with pytest.raises(ValueError, match="reference of size 15x40 is smaller than 16 pixels"):
        prepared_size((15, 40), (64, 64), named=True, native_source=False)


def test_source_images_are_resized_with_pils_default_filter_or_passed_native():
    noise = torch.randint(0, 256, (80, 96, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    image = Image.fromarray(noise.numpy())
    out = prepare(image, (64, 48), named=False, native_source=False)
    assert out.tobytes() == image.resize((64, 48), Image.Resampling.BICUBIC).tobytes()
    assert out.tobytes() != image.resize((64, 48), Image.Resampling.LANCZOS).tobytes()
    assert prepare(image, (64, 48), named=False, native_source=True) is image


# -- through the task records and the suite runner --------------------------------------------

def _task(tmp_path: Path, name: str, size, *, named: bool, task_size=(64, 64), rgb=(200, 30, 30)) -> Task:
    path = tmp_path / f"{name}.png"
    Image.new("RGB", size, rgb).save(path)
    return Task(task_id=name, family="test", instruction="draw a ball in this color", reference=path, seed=1,
                width=task_size[0], height=task_size[1], named_reference=named)


def test_task_edits_follow_the_experiment(tmp_path):
    named = _task(tmp_path, "named", (72, 100), named=True)
    source = _task(tmp_path, "source", (96, 80), named=False, rgb=(20, 30, 200))
    other = _task(tmp_path, "other", (80, 96), named=False, rgb=(20, 200, 30))
    assert named.to_edit().reference.size == (64, 96) == named.reference_size() == named.reference_size((72, 100))
    assert source.to_edit().reference.size == (64, 64) == source.reference_size((96, 80))
    assert source.reference_size((96, 80), native_source=True) == (96, 80)
    src, tgt = Pair(source, other).to_edits()
    assert (src.reference.size, tgt.reference.size) == ((96, 80), (80, 96))  # I2I→I2I: native
    assert named.to_edit(32, 32).reference.size == source.to_edit(32, 32).reference.size == (32, 32)  # a run at another size


def test_suite_runner_hands_the_pipeline_the_authors_reference(tmp_path):
    """A knockout runs at the task's size when the model names no size of its own, its named
    reference cropped; I2I→I2I patching keeps source images native (the resizing of source
    images for the other experiments is ``test_task_edits_follow_the_experiment``)."""
    from mechinterp.suite.runner import ClaimRunner

    model = mi.Model(tiny_pipeline(seed=0), meta={"max_sequence_length": 48})  # names no default size
    runner = ClaimRunner(model, lambda q: None, steps=1)
    assert runner.size is None
    knockout = Claim(id="ko", statement="", hypothesis=None, experiment=Experiment("knockout", (("dest", "text"), ("source", "ref"))))
    patch = replace(knockout, experiment=Experiment("patching", (("site", "single.1"), ("tokens", "text"))))
    named = _task(tmp_path, "named", (72, 100), named=True, task_size=(48, 64))
    source = _task(tmp_path, "source", (96, 80), named=False, rgb=(20, 30, 200))
    ko_named = runner.experiment(knockout, named)
    assert ko_named.images["reference"].size == (64, 96) and ko_named.images["knockout_output"].size == (48, 64)
    assert ko_named.generations["i2i_baseline"].layout.n_ref == reference_tokens((64, 96), model.multiple_of)
    target = _task(tmp_path, "target", (72, 100), named=True)
    patched = runner.experiment(patch, Pair(source, target), fixed_sites=True)
    assert patched.images["source_reference"].size == (96, 80) and patched.images["target_reference"].size == (64, 96)


# -- the layout's count is the pipeline's -----------------------------------------------------

class _Stop(Exception):
    pass


@pytest.mark.parametrize("size", [(1872, 2368), (1025, 1024), (2400, 640), (1000, 1000), (700, 1500), (1366, 769)])
def test_layout_counts_the_reference_tokens_the_pipeline_makes(tiny_model, size):
    """The reference the pipeline encodes (after its area limit, truncation and flooring) makes
    as many tokens as the layout counts, below and above the pipeline's 1024² limit; the run is
    stopped at the VAE encoder (the tiny VAE's attention cannot take a megapixel image)."""
    edit = mi.Edit("draw a ball", reference=Image.new("RGB", size, (90, 90, 90)), height=64, width=64, steps=1)
    seen = []

    def stop(module, args):
        seen.append(tuple(args[0].shape[-2:]))
        raise _Stop

    handle = tiny_model.pipe.vae.encoder.register_forward_pre_hook(stop)
    try:
        with pytest.raises(_Stop):
            tiny_model.pipe(prompt="draw a ball", image=edit.reference, height=64, width=64, num_inference_steps=1,
                            max_sequence_length=48, generator=torch.Generator().manual_seed(0))
    finally:
        handle.remove()
    (h, w), m = seen[0], tiny_model.multiple_of
    assert h % m == 0 and w % m == 0
    assert tiny_model.layout(edit).n_ref == (h // m) * (w // m)
