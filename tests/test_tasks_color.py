"""The colour family and its patching pairs, generated in code, against the authors' lists."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mechinterp import Edit
from mechinterp.tasks import COLORS, OBJECTS, FAMILIES, PAIR_FAMILIES, Pair, SolidColor, TaskDataError
from mechinterp.tasks import color_pairs, color_tasks, load_family, load_pairs, task_seed

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "i2i-interp"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"authors' reference data not at {REFERENCE}")


def _authors_rows(name: str) -> list[dict]:
    with open(REFERENCE / "tasks" / f"{name}.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _authors_pairs(name: str) -> list[tuple[str, str]]:
    with open(REFERENCE / "pairs" / f"{name}.txt", encoding="utf-8") as fh:
        return [tuple(line.rstrip("\n").split("\t")) for line in fh if line.strip()]


@needs_reference
def test_colour_family_equals_authors_solid_color_list():
    ours = color_tasks()
    theirs = _authors_rows("solid_color")
    assert [t.task_id for t in ours] == [r["task_id"] for r in theirs]
    assert [t.instruction for t in ours] == [r["instruction"] for r in theirs]
    assert [t.seed for t in ours] == [r["noise_seed"] for r in theirs]
    assert [(t.height, t.width) for t in ours] == [(r["height"], r["width"]) for r in theirs]
    ours_combos = {(f"solid_{t.metadata['color']}", t.metadata["object"]) for t in ours}
    theirs_combos = {(r["real_ref_name"], r["instruction"].split()[2]) for r in theirs}
    assert ours_combos == theirs_combos and len(ours_combos) == 64


@needs_reference
def test_colour_pairs_equal_authors_pair_list():
    theirs = _authors_pairs("single9_4step_color")
    ours = [(p.source.task_id, p.target.task_id) for p in color_pairs()]
    assert ours == theirs

    def triple(pair: Pair) -> tuple[str, str, str]:
        return pair.source.metadata["color"], pair.target.metadata["color"], pair.source.metadata["object"]

    by_id = {t.task_id: t for t in color_tasks()}
    theirs_triples = {(by_id[s].metadata["color"], by_id[t].metadata["color"], by_id[s].metadata["object"]) for s, t in theirs}
    assert {triple(p) for p in color_pairs()} == theirs_triples


@needs_reference
@pytest.mark.parametrize("color", list(COLORS))
def test_solid_references_match_authors_pngs(color):
    with Image.open(REFERENCE / "solid_colors" / f"solid_{color}.png") as im:
        theirs = np.asarray(im.convert("RGB"))
    ours = np.asarray(SolidColor(color, COLORS[color]).render(theirs.shape[0], theirs.shape[1]))
    assert np.array_equal(ours, theirs)


def test_colour_family_structure_without_reference_data():
    tasks = color_tasks()
    assert len(tasks) == FAMILIES["color"].size == 320
    assert len({t.task_id for t in tasks}) == 320
    assert {t.metadata["color"] for t in tasks} == set(COLORS) and {t.metadata["object"] for t in tasks} == set(OBJECTS)
    assert all(t.seed == zlib.crc32(t.task_id.encode()) == task_seed(t.task_id) for t in tasks)
    assert all(t.instruction == f"draw a {t.metadata['object']} in this color" for t in tasks)
    assert all(color not in t.instruction for t in tasks for color in COLORS)  # only the reference carries it
    assert len({t.stratum for t in tasks}) == 64


def test_colour_pairs_structure():
    pairs = color_pairs()
    assert len(pairs) == PAIR_FAMILIES["color"].size == 448
    assert len({p.pair_id for p in pairs}) == 448
    for p in pairs:
        assert p.source.instruction == p.target.instruction
        assert p.source.metadata["color"] != p.target.metadata["color"]
        assert p.source.metadata["object"] == p.target.metadata["object"]
        assert p.source.seed != p.target.seed
        assert p.target.metadata["replicate"] == (p.source.metadata["replicate"] + 1) % 5


def test_colour_needs_nothing_outside_the_project(monkeypatch, tmp_path):
    monkeypatch.delenv("MECHINTERP_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert FAMILIES["color"].needs == "in-project"
    tasks = load_family("color")
    pairs = load_pairs("color", data_dir=None)
    assert len(tasks) == 320 and len(pairs) == 448
    image = tasks[0].reference_image()
    assert image.size == (1024, 1024) and image.getpixel((5, 7)) == COLORS["red"]


def test_task_to_edit_with_size_override():
    task = color_tasks()[0]
    edit = task.to_edit(height=32, width=48, steps=2)
    assert isinstance(edit, Edit)
    assert (edit.height, edit.width, edit.steps, edit.seed) == (32, 48, 2, task.seed)
    assert edit.instruction == task.instruction and edit.reference.size == (48, 32)
    assert edit.reference.getpixel((0, 0)) == COLORS["red"]
    full = task.to_edit()
    assert (full.height, full.width, full.steps) == (1024, 1024, 4) and full.reference.size == (1024, 1024)
    # the same task gives the same edit key on every call (the generation cache relies on it)
    assert task.to_edit(32, 32).key() == task.to_edit(32, 32).key()


def test_pair_to_edits_and_pair_validation():
    pair = color_pairs()[0]
    src, tgt = pair.to_edits(height=32, width=32, steps=1)
    assert src.instruction == tgt.instruction and src.reference_digest != tgt.reference_digest
    same_ref = color_tasks()[1]
    with pytest.raises(TaskDataError, match="must differ in reference"):
        Pair(color_tasks()[0], same_ref)
    other_instruction = next(t for t in color_tasks() if t.metadata["object"] != "couch")
    with pytest.raises(TaskDataError, match="instructions differ"):
        Pair(color_tasks()[0], other_instruction)


@pytest.mark.parametrize(("color", "obj", "rep", "match"), [
    ("teal", "ball", 0, "valid colours: red, orange"),
    ("red", "lamp", 0, "valid objects: couch"),
    ("red", "ball", 5, "replicate must be in 0..4"),
])
def test_colour_task_rejects_unknown_values(color, obj, rep, match):
    from mechinterp.tasks.color import color_task

    with pytest.raises(ValueError, match=match):
        color_task(color, obj, rep)
