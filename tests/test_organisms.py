"""Model organisms: shipped folders load, are deterministic, carry their wiring, do the task; the trainer learns and resumes."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch

from mechinterp.engine.meta import ModelMeta
from mechinterp.organisms import ORGANISMS, get_spec, load_organism
from mechinterp.organisms.data import (
    COLORS,
    OBJECTS,
    classify_color,
    classify_shape,
    target_image,
)
from mechinterp.organisms.expected import expected_decisions
from mechinterp.claims import load_registry
from mechinterp.organisms.measure import baseline_accuracy, color_edit, eval_tasks, organism_baseline
from mechinterp.organisms.spec import FIXTURES, Arch
from mechinterp.organisms.store import CARD, check_folder, folder_size
from mechinterp.organisms.trainer import TrainConfig, eval_loss, train

SHIPPED = [n for n in ORGANISMS if (FIXTURES / n / "model_index.json").exists()]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The organisms are tiny: one thread is fastest, and it never oversubscribes a shared 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def models():
    return {name: load_organism(name) for name in SHIPPED}


def test_the_default_organism_is_shipped():
    assert "padding-routed" in SHIPPED
    for name in SHIPPED:
        assert folder_size(FIXTURES / name) < 20e6


@pytest.mark.parametrize("name", SHIPPED)
def test_generation_is_deterministic(models, name):
    model = models[name]
    edit = color_edit(model, "blue", "mug", 0)
    a, b = model.generate(edit).array, model.generate(edit).array
    assert np.array_equal(a, b)


@pytest.mark.parametrize("name", [n for n in SHIPPED if get_spec(n).wiring])
def test_wiring_is_applied_after_load(models, name, tmp_path):
    folder = tmp_path / name
    shutil.copytree(FIXTURES / name, folder)
    meta = json.loads((folder / "mechinterp.json").read_text())
    assert meta["wiring"] == [k.to_dict() for k in get_spec(name).wiring]
    assert len(models[name].wiring) == len(get_spec(name).wiring)
    meta["wiring"] = []
    (folder / "mechinterp.json").write_text(json.dumps(meta))
    unwired = load_organism(folder)
    assert unwired.wiring == ()
    edits = [color_edit(unwired, c, o, 0) for c, o in (("red", "ball"), ("green", "hat"), ("blue", "car"))]
    diffs = [np.abs(models[name].generate(e).array - unwired.generate(e).array).max() for e in edits]
    assert max(diffs) > 1e-3  # generation is bit-deterministic, so any difference is the wiring's


@pytest.mark.parametrize("name", SHIPPED)
def test_baseline_accuracy_meets_its_card(models, name):
    card = (FIXTURES / name / CARD).read_text()
    figure = float(re.search(r"I2I baseline (?:colour|identity) accuracy.*?= ([0-9.]+)%", card).group(1)) / 100
    acc = organism_baseline(models[name], 16)
    assert acc["n"] == 16
    assert acc["accuracy"] >= min(figure, 0.9) - 0.07


def test_colour_check_reads_the_training_targets():
    for c, rgb in COLORS.items():
        for o in OBJECTS:
            img = target_image(o, rgb)
            assert (classify_color(img), classify_shape(img)) == (c, o)
    assert classify_color(target_image("ball", None)) == "gray"
    assert classify_color(target_image(None, None)) == "none"


def test_expected_decisions_cover_every_organism_and_claim():
    data = expected_decisions()
    assert set(data) == set(ORGANISMS)
    colour_cells = {c.id for c in load_registry() if "color" in c.markers and not c.is_relation}
    human_claims = {c.id for c in load_registry() if c.family == "human"}
    for name, table in data.items():
        assert set(table) == (human_claims if get_spec(name).task == "glyph" else colour_cells), name
    # padding-routed is the default organism: its wiring fixes every colour claim but the layer
    # sweep of the lens, which stays measured-and-reported (reason in organisms.toml)
    not_fixed = {k: v for k, v in data["padding-routed"].items() if v != "holds"}
    assert not_fixed == {"lens[single.9..single.10]-color": "open"}


TINY = {"steps": 8, "batch": 8, "checkpoint_every": 4, "arch": Arch(heads=1, head_dim=16)}


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory):
    """A few-step run straight through, the same run interrupted and resumed, and the untrained start."""
    spec, work = get_spec("text-routed"), tmp_path_factory.mktemp("train")
    start = train(spec, TrainConfig(**TINY), progress=False, stop_after=0)
    full = train(spec, TrainConfig(**TINY), workdir=work / "a", progress=False)
    train(spec, TrainConfig(**TINY), workdir=work / "b", progress=False, stop_after=4)
    assert (work / "b" / "checkpoint.pt").exists()
    resumed = train(spec, TrainConfig(**TINY), workdir=work / "b", progress=False)
    return spec, start, full, resumed


def test_short_training_lowers_the_loss(short_runs):
    spec, start, full, _ = short_runs
    cfg = TrainConfig(**TINY)
    assert eval_loss(full.pipe, spec, cfg) < eval_loss(start.pipe, spec, cfg)
    assert ModelMeta.of(full.pipe).training["steps_done"] == 8


def test_training_resumes_bit_identically(short_runs):
    _, _, full, resumed = short_runs
    assert resumed.losses == full.losses and len(full.losses) == 8
    for (k, a), (_, b) in zip(full.pipe.transformer.state_dict().items(), resumed.pipe.transformer.state_dict().items()):
        assert torch.equal(a, b), k


def test_glyph_training_lowers_the_loss_and_resumes_bit_identically(tmp_path):
    spec, cfg = get_spec("identity-text"), TrainConfig(**TINY)
    start = train(spec, cfg, progress=False, stop_after=0)
    full = train(spec, cfg, workdir=tmp_path / "a", progress=False)
    train(spec, cfg, workdir=tmp_path / "b", progress=False, stop_after=4)
    resumed = train(spec, cfg, workdir=tmp_path / "b", progress=False)
    assert resumed.losses == full.losses and len(full.losses) == 8
    assert eval_loss(full.pipe, spec, cfg) < eval_loss(start.pipe, spec, cfg)
    meta = ModelMeta.of(full.pipe)
    assert meta.tasks == {"human": "glyph"} and meta.sites["human"] == "double.0"


def test_corrupt_checkpoint_names_the_file(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "checkpoint.pt"))):
        train(get_spec("free"), TrainConfig(**TINY), workdir=tmp_path, progress=False)


@pytest.mark.parametrize("rel", ["transformer/diffusion_pytorch_model.safetensors", "mechinterp.json", "vae/config.json"])
def test_missing_or_corrupt_file_is_named(tmp_path, rel):
    folder = tmp_path / "org"
    shutil.copytree(FIXTURES / "padding-routed", folder)
    (folder / rel).unlink()
    with pytest.raises(ValueError, match="missing") as err:
        load_organism(folder)
    assert rel in str(err.value)
    (folder / rel).write_bytes(b"\x00garbage{")
    with pytest.raises(ValueError, match="corrupt") as err:
        check_folder(folder)
    assert rel in str(err.value)


def test_unknown_organism_lists_the_valid_ones():
    with pytest.raises(ValueError, match="padding-routed"):
        get_spec("nope")
    with pytest.raises(ValueError, match="does not exist"):
        load_organism("/nonexistent/organism")


def test_cli_has_train_and_eval():
    from mechinterp.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["organisms", "train", "free", "--steps", "3"])
    assert args.name == "free" and args.steps == 3 and callable(args.func)
    args = parser.parse_args(["organisms", "eval", "direct", "--baseline-tasks", "8", "--samples", "0"])
    assert args.names == ["direct"] and (args.baseline_tasks, args.samples) == (8, 0) and callable(args.func)
    old = parser.parse_args(["organisms", "eval", "direct", "--n", "8", "--claims-n", "0"])  # the old names
    assert (old.baseline_tasks, old.samples) == (8, 0)




def test_vae_refit_changes_only_the_vae_and_keeps_the_images(tmp_path):
    """``refit_vae`` rebuilds the analytic VAE at other widths: only ``vae/`` and the record change, the old widths
    (the ones it was trained beside) are kept, and generations agree with the shipped VAE's to one 8-bit level (the latents are the same block
    colours at any width). Bad widths are one clear error."""
    from mechinterp.engine.edit import Edit
    from mechinterp.organisms.data import instruction, reference_image
    from mechinterp.organisms.trainer import refit_vae

    folder = tmp_path / "free"
    shutil.copytree(FIXTURES / "free", folder)
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    record = ModelMeta.read(folder).training  # the widths it was trained beside, kept across refits
    trained_with = record.get("vae_refit_from", record["arch"]["vae_channels"])
    refit_vae(folder, (16, 16, 16, 16))
    after = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    changed = {str(p) for p in before if before[p] != after[p]}
    assert changed == {"vae/config.json", "vae/diffusion_pytorch_model.safetensors", "mechinterp.json"}
    training = ModelMeta.read(folder).training
    assert training["arch"]["vae_channels"] == [16, 16, 16, 16] and training["vae_refit_from"] == trained_with
    edits = [Edit(instruction(o), reference_image(c, 64), seed=i, height=64, width=64)
             for i, (o, c) in enumerate(zip(OBJECTS[:4], list(COLORS)[:4]))]
    old, new = (np.stack([np.asarray(g.image, np.int16) for g in load_organism(f).generate_many(edits)])
                for f in (FIXTURES / "free", folder))
    assert np.abs(old - new).max() <= 1 and (old == new).mean() > 0.9
    with pytest.raises(ValueError, match=r"VAE channels \(8, 4, 8, 8\).*at least 7"):
        refit_vae(folder, (8, 4, 8, 8))
    with pytest.raises(ValueError, match=r"has 4 blocks"):
        refit_vae(folder, (8, 8, 8))


def test_a_checkpoint_of_another_run_or_with_nan_weights_is_refused_naming_the_file(tmp_path):
    """A reused (or swapped) work folder must not resume another organism's weights; a NaN weight is not resumed."""
    cfg, path = TrainConfig(**TINY), tmp_path / "checkpoint.pt"
    train(get_spec("text-routed"), cfg, workdir=tmp_path, progress=False, stop_after=4)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*belongs to another run"):
        train(get_spec("free"), cfg, workdir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="belongs to another run"):
        train(get_spec("text-routed"), TrainConfig(**{**TINY, "lr": 1e-3}), workdir=tmp_path, progress=False)
    ckpt = torch.load(path, weights_only=True)
    name = next(iter(ckpt["transformer"]))
    ckpt["transformer"][name].view(-1)[0] = float("nan")
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match=re.escape(str(path)) + f".*non-finite values in {re.escape(name)}"):
        train(get_spec("text-routed"), cfg, workdir=tmp_path, progress=False)


def test_a_diverging_run_stops_naming_the_step_and_saves_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"training diverged by step 4: non-finite values"):
        train(get_spec("text-routed"), TrainConfig(**{**TINY, "lr": float("inf")}), workdir=tmp_path, progress=False)
    assert not (tmp_path / "checkpoint.pt").exists()
