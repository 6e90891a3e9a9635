"""Families read from a data directory: the authors' lists, the manifest, and every bad input."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from mechinterp.tasks import FAMILIES, PAIR_FAMILIES, TaskDataError, load_family, load_pairs
from mechinterp.tasks.authors import BUCKETS, read_tasks_jsonl
from mechinterp.tasks.manifest import load_manifest, verify_references

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "reference" / "i2i-interp"
PAPER = SHARED / "paper" / "002_571447450c379c4a.txt"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"authors' reference data not at {REFERENCE}")

PAPER_COUNTS = {"solid_color": 320, "style": 450, "manual": 450, "dreambench_humans": 90,
                "dreambench_humans_shared": 50, "add": 789, "remove": 726}


# -- the authors' lists -----------------------------------------------------------------------

@needs_reference
@pytest.mark.parametrize("bucket", list(PAPER_COUNTS))
def test_every_authors_jsonl_loads_with_the_paper_count(bucket):
    tasks = read_tasks_jsonl(REFERENCE / "tasks" / f"{bucket}.jsonl", bucket, REFERENCE)
    assert len(tasks) == PAPER_COUNTS[bucket]
    assert len({t.task_id for t in tasks}) == len(tasks)
    assert {t.family for t in tasks} == {BUCKETS[bucket]}


@needs_reference
def test_families_and_pairs_from_the_authors_lists_have_the_paper_sizes():
    sizes = {name: len(load_family(name, REFERENCE, verify=False)) for name in FAMILIES}
    assert sizes == {name: info.size for name, info in FAMILIES.items()}
    assert sum(sizes[n] for n in ("color", "style", "style_real", "human", "human_shared", "add", "remove")) == 2875
    assert sizes["human"] == 90  # the paper's human lens / knockout cells (n = 90): the individual tasks
    for name, info in PAIR_FAMILIES.items():
        pairs = load_pairs(name, REFERENCE, verify=False)
        assert len(pairs) == info.size
        assert {p.source.family for p in pairs} == {info.source_family}
        assert {p.target.family for p in pairs} == {info.target_family}


@needs_reference
def test_strata_of_the_authors_families():
    human = load_family("human", REFERENCE, verify=False)
    assert len({t.stratum for t in human}) == 10 and all(
        sum(t.stratum == s for t in human) == 9 for s in {t.stratum for t in human})
    assert all("_shared_" not in t.task_id for t in human)
    style = load_family("style", REFERENCE, verify=False)
    assert len({t.stratum for t in style}) == 90  # 18 subjects x 5 prompts, 5 seeds each
    assert len({t.stratum for t in load_family("add", REFERENCE, verify=False)}) == 397


@needs_reference
def test_shipped_manifest_covers_every_user_supplied_style_and_human_reference():
    manifest = load_manifest()
    for family in ("style", "style_real", "human", "human_shared"):
        for task in load_family(family, REFERENCE, verify=False):
            entry = manifest.entry_for(task.metadata["reference_path"])
            assert entry is not None, task.task_id
            assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256) and entry.url.startswith("https://") and entry.licence
            assert task.reference.resolve() == (REFERENCE / entry.path).resolve()


@pytest.mark.skipif(not PAPER.is_file(), reason="paper text not available")
def test_manifest_urls_and_licences_are_those_of_appendix_g():
    text = PAPER.read_text(encoding="utf-8").replace("\\(", "(").replace("\\)", ")")
    entries = {e.key: e for e in load_manifest().files.values()}
    style = [e for e in entries.values() if e.family in ("style", "style_real")]
    assert len(style) == 36
    for e in style:
        assert e.url in text, e.key
        assert f"({e.licence})" in text, e.key


# -- a data directory built here --------------------------------------------------------------

def _row(task_id: str, rel: str, size=(48, 32), **meta) -> dict:
    return {"task_id": task_id, "edit_type": "add", "instruction": "add a lamp", "noise_seed": 7,
            "height": size[1], "width": size[0], "source_image_path": rel, "metadata": meta}


def _sun_dir(root: Path, layout: str = "flat", n: int = 4) -> Path:
    """A data dir with an ``add`` bucket of ``n`` SUN397-style tasks and their images."""
    rows = []
    for i in range(n):
        rel = f"data/tasks/add/images/sun397_k_kitchen__sun_{i}.jpg"
        rows.append(_row(f"add_{i}", rel, sun397_category=f"/k/kitchen{i % 2}", sun397_src_filename=f"sun_{i}.jpg"))
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (48, 32), (i * 40, 80, 120)).save(root / rel)
    jsonl = root / "tasks" / "add.jsonl" if layout == "flat" else root / "data" / "tasks" / "add" / "tasks.jsonl"
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return jsonl


@pytest.mark.parametrize("layout", ["flat", "authors_repo"])
def test_family_loads_from_either_data_dir_layout(tmp_path, layout):
    _sun_dir(tmp_path, layout)
    tasks = load_family("add", tmp_path)
    assert [t.task_id for t in tasks] == [f"add_{i}" for i in range(4)]
    pixel = tasks[1].reference_image().getpixel((0, 0))
    assert max(abs(a - b) for a, b in zip(pixel, (40, 80, 120))) <= 4  # JPEG
    assert tasks[1].to_edit(height=16, width=16).reference.size == (16, 16)


def test_data_dir_from_environment(tmp_path, monkeypatch):
    _sun_dir(tmp_path)
    monkeypatch.setenv("MECHINTERP_DATA_DIR", str(tmp_path))
    assert len(load_family("add")) == 4


def test_family_without_data_dir_says_what_it_needs(monkeypatch):
    monkeypatch.delenv("MECHINTERP_DATA_DIR", raising=False)
    with pytest.raises(TaskDataError, match=r"family 'style' needs a data directory .*style\.jsonl.*MECHINTERP_DATA_DIR"):
        load_family("style")


# -- bad inputs: one clear error each ---------------------------------------------------------

def test_unknown_family_lists_the_valid_ones():
    with pytest.raises(TaskDataError, match="unknown family 'colour'; valid family names: color, style, style_real, human, human_shared, glyph, add, remove"):
        load_family("colour")
    with pytest.raises(TaskDataError, match="unknown pair family 'add'; valid pair family names: color, style, human, glyph"):
        load_pairs("add")


@pytest.mark.parametrize(("field", "match"), [
    ("noise_seed", r"add\.jsonl:2: missing field 'noise_seed'; every task line needs task_id, instruction"),
    ("instruction", r"add\.jsonl:2: missing field 'instruction'"),
    ("source_image_path", r"add\.jsonl:2: task 'add_1' has no reference; set 'source_image_path'"),
])
def test_jsonl_line_with_a_missing_field(tmp_path, field, match):
    jsonl = _sun_dir(tmp_path)
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    del rows[1][field]
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(TaskDataError, match=match):
        load_family("add", tmp_path)


@pytest.mark.parametrize(("line", "match"), [
    ("{not json", r"add\.jsonl:5: not valid JSON"),
    ("[1, 2]", r"add\.jsonl:5: expected a JSON object, got list"),
    (json.dumps(_row("add_0", "x.jpg")), r"add\.jsonl:5: duplicate task id 'add_0' \(first on line 1\)"),
    (json.dumps({**_row("add_9", "x.jpg"), "noise_seed": "12"}), r"add\.jsonl:5: task 'add_9': seed must be a non-negative integer, got '12'"),
])
def test_malformed_jsonl_lines(tmp_path, line, match):
    jsonl = _sun_dir(tmp_path)
    jsonl.write_text(jsonl.read_text() + line + "\n")
    with pytest.raises(TaskDataError, match=match):
        load_family("add", tmp_path, verify=False)


def test_missing_images_are_all_named_with_their_manifest_entry(tmp_path):
    _sun_dir(tmp_path)
    for i in (0, 3):
        (tmp_path / f"data/tasks/add/images/sun397_k_kitchen__sun_{i}.jpg").unlink()
    with pytest.raises(TaskDataError) as info:
        load_family("add", tmp_path)
    message = str(info.value)
    assert "family 'add': 2 of 4 reference images" in message
    for i in (0, 3):
        assert f"missing  data/tasks/add/images/sun397_k_kitchen__sun_{i}.jpg" in message
        assert f"manifest collection 'sun397', category /k/kitchen{i % 2} file sun_{i}.jpg" in message
    assert "vision.princeton.edu" in message and "sun_1.jpg" not in message


def test_wrong_size_image_is_caught(tmp_path):
    _sun_dir(tmp_path)
    Image.new("RGB", (32, 32)).save(tmp_path / "data/tasks/add/images/sun397_k_kitchen__sun_2.jpg")
    with pytest.raises(TaskDataError, match=r"size     data/tasks/add/images/sun397_k_kitchen__sun_2\.jpg  is 32x32 but task 'add_2' expects 48x32"):
        load_family("add", tmp_path)


def test_wrong_style_image_fails_the_shipped_checksum(tmp_path):
    rel = "data/style_references/fictional/fox"
    row = {**_row("customize_fox_snow_s0", ""), "source_image_path": None, "real_ref_dir": str(Path(rel).parent),
           "real_ref_name": "fox"}
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "style.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / Path(rel).parent).mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / (rel + ".jpg"))
    with pytest.raises(TaskDataError) as info:
        load_family("style", tmp_path)
    message = str(info.value)
    assert "checksum data/style_references/fictional/fox.jpg" in message
    assert "manifest entry \"style illustration 'fox'\": https://openverse.org/image/a6076556" in message
    assert "(CC BY-NC 2.0)" in message


def test_checksums_pass_and_fail_with_a_manifest(tmp_path):
    _sun_dir(tmp_path)
    tasks = load_family("add", tmp_path, verify=False)
    rel = tasks[0].metadata["reference_path"]
    digest = hashlib.sha256((tmp_path / rel).read_bytes()).hexdigest()
    entry = {"key": rel, "path": rel, "what": "test image", "url": "https://example.org/a", "licence": "CC0",
             "sha256": digest, "family": "add"}
    manifest_file = tmp_path / "manifest.json"
    manifest_file.write_text(json.dumps({"files": [entry], "collections": []}))
    manifest = load_manifest(manifest_file)
    verify_references(tasks[:1], tmp_path, "add", manifest)  # right file: no error
    Image.new("RGB", (48, 32), (1, 2, 3)).save(tmp_path / rel)
    with pytest.raises(TaskDataError, match=r"checksum .*manifest expects .*test image"):
        verify_references(tasks[:1], tmp_path, "add", manifest)


def _pairs_dir(tmp_path: Path, lines: list[str]) -> None:
    """A data dir whose human family is two people x one shared prompt, plus a pair list."""
    rows = []
    for person in ("01", "02"):
        rel = f"data/tasks/customize/images/person_{person}.jpg"
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16), (int(person) * 50, 0, 0)).save(tmp_path / rel)
        rows.append({**_row(f"shared_{person}_kitchen", rel, size=(16, 16), human_idx=int(person)),
                     "instruction": "A photograph of the person in this image in a kitchen"})
    (tmp_path / "tasks").mkdir(exist_ok=True)
    (tmp_path / "tasks" / "dreambench_humans.jsonl").write_text("")
    (tmp_path / "tasks" / "dreambench_humans_shared.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "pairs").mkdir(exist_ok=True)
    (tmp_path / "pairs" / "mm7_4step_dreambench_humans.txt").write_text("".join(line + "\n" for line in lines))


def test_pairs_load_from_a_data_dir(tmp_path):
    _pairs_dir(tmp_path, ["shared_01_kitchen\tshared_02_kitchen", "shared_02_kitchen\tshared_01_kitchen"])
    pairs = load_pairs("human", tmp_path, verify=False)
    assert [p.pair_id for p in pairs] == ["shared_01_kitchen->shared_02_kitchen", "shared_02_kitchen->shared_01_kitchen"]
    assert pairs[0].source.stratum == "person 01" and pairs[0].target.stratum == "person 02"


@pytest.mark.parametrize(("line", "match"), [
    ("shared_01_kitchen\tshared_03_kitchen",
     r"mm7_4step_dreambench_humans\.txt:2: target task 'shared_03_kitchen' does not exist in family 'human_shared'"),
    ("shared_09_kitchen\tshared_01_kitchen", r":2: source task 'shared_09_kitchen' does not exist"),
    ("shared_01_kitchen shared_02_kitchen", r":2: expected '<source_task_id>\\t<target_task_id>'"),
    ("shared_01_kitchen\tshared_01_kitchen", r":2: pair .* must differ in reference"),
])
def test_pair_naming_a_task_that_does_not_exist(tmp_path, line, match):
    _pairs_dir(tmp_path, ["shared_01_kitchen\tshared_02_kitchen", line])
    with pytest.raises(TaskDataError, match=match):
        load_pairs("human", tmp_path, verify=False)


def test_missing_pair_list_names_where_it_looked(tmp_path):
    _pairs_dir(tmp_path, [])
    (tmp_path / "pairs" / "mm7_4step_dreambench_humans.txt").unlink()
    with pytest.raises(TaskDataError, match=r"pair list 'mm7_4step_dreambench_humans' not found .*pairs/mm7_4step_dreambench_humans\.txt"):
        load_pairs("human", tmp_path, verify=False)


def test_missing_task_list_names_where_it_looked(tmp_path):
    with pytest.raises(TaskDataError, match=r"task list for bucket 'remove' not found .*tasks/remove\.jsonl.*data/tasks/remove/tasks\.jsonl"):
        load_family("remove", tmp_path)


def test_one_data_dir_accessor(monkeypatch, tmp_path):
    """The argument wins, else ``$MECHINTERP_DATA_DIR`` (``~`` expanded), else none: what the loaders,
    ``mechinterp tasks list``, the bench and the GPU check all read."""
    from mechinterp.tasks.families import data_dir_or_env

    monkeypatch.delenv("MECHINTERP_DATA_DIR", raising=False)
    assert data_dir_or_env() is None and data_dir_or_env(tmp_path) == tmp_path
    monkeypatch.setenv("MECHINTERP_DATA_DIR", "~/authors")
    assert data_dir_or_env() == Path("~/authors").expanduser()
    assert data_dir_or_env(tmp_path) == tmp_path
