"""The bench harness and the cost model (no timing is asserted: timings live in bench/results)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mechinterp.bench import cost, harness, settings
from mechinterp.bench.cli import main
from mechinterp.bench.shapes import KLEIN_9B, SMALL, TOKENS_1024, build_transformer, forward_flops


def test_9b_forward_flops_match_the_issue():
    """≈161 TFLOP per forward at 8,704 tokens; dropping the reference after double.7 leaves ≈0.6×."""
    t = TOKENS_1024
    full = forward_flops(KLEIN_9B, t["text"], t["image"], t["ref"])
    assert full == pytest.approx(161e12, rel=0.01)
    assert forward_flops(KLEIN_9B, t["text"], t["image"], t["ref"], cutoff_flat=7) / full == pytest.approx(0.60, abs=0.01)
    assert forward_flops(KLEIN_9B, t["text"], t["image"], t["ref"], cutoff_flat=31) == full


def test_flops_formula_counts_the_built_models_parameters():
    """Linear FLOPs per token = 2 × (per-token weight count) of the real diffusers blocks."""
    model = build_transformer(SMALL)
    block_params = sum(p.numel() for b in model.transformer_blocks for n, p in b.named_parameters()
                       if "norm" not in n) // 2  # each token uses one stream's weights
    block_params += sum(p.numel() for b in model.single_transformer_blocks for n, p in b.named_parameters() if "norm" not in n)
    attention = 4 * 10 * 10 * SMALL["num_attention_heads"] * SMALL["attention_head_dim"] * 6
    assert forward_flops(SMALL, 4, 6, 0) == pytest.approx(2 * block_params * 10 + attention, rel=1e-6)


def test_reproduction_cost_uses_measured_numbers_when_given():
    projected = cost.reproduction()
    assert all("projected" in line.source for line in projected)
    assert sum(line.generations for line in projected if "knockout" in line.what) == 4 * 860
    assert sum(line.generations for line in projected if "patching" in line.what) == 3 * 1348
    measured = cost.reproduction(2.0, {"ko:ref->text": 1.1, "lens": 0.5, "patch": 1.02})
    ko = next(line for line in measured if line.what.endswith("ref->text"))
    assert ko.seconds_each == pytest.approx(2.2) and "measured" in ko.source
    t2i = next(line for line in measured if line.what.startswith("T2I lens baselines"))
    assert t2i.seconds_each == pytest.approx(1.0) and "measured" in t2i.source  # a lens run without its patch
    text = cost.report(measured)
    assert "**total**" in text and "paper: 18 H200-hours" in text


def test_harness_measures_and_saves(tiny_model, edit, tmp_path):
    include = settings.Include(modes=("split",), authors=False, capture_peers=())
    chosen = [s for s in settings.pipeline_settings(tiny_model, edit, include, batch=2, extras=False)
              if s.name in ("clean", "ko:ref->text", "batch x2 (per edit)")]
    results = harness.run_bench(chosen, "cpu", repeats=1, log=lambda *a: None)
    assert [m.name for m in results] == ["clean", "ko:ref->text", "batch x2 (per edit)"]
    assert results[0].ratio == 1.0 and all(m.median_s > 0 and m.peak_mb > 0 for m in results)
    path = harness.save(tmp_path / "r.json", "tiny", {"model": "tiny"}, results, "cpu")
    doc = json.loads(path.read_text())
    assert {"device", "torch", "diffusers", "date"} <= set(doc["environment"])
    assert "| ko:ref->text | knockout |" in harness.table(results)


def test_cli_skips_the_9b_model_without_a_gpu_and_prints_the_cost(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the 9B bench would really run")
    assert main(["--model", "klein-9b", "--device", "cpu", "--cost", "--out", ""]) == 0
    out = capsys.readouterr().out
    assert "skipping klein-9b" in out and "PROJECTED" in out and "Break-even MFU" in out


def test_cost_alone_runs_no_bench_and_reuses_a_saved_gpu_measurement(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing saved yet: neither reports/bench nor bench/results exists here
    assert main(["--cost"]) == 0
    out = capsys.readouterr().out
    assert "[bench] tiny" not in out and "PROJECTED" in out and not (tmp_path / "reports").exists()
    # a klein-9b bench saved by an earlier run (e.g. bench/gpu-check on a lent GPU) is used as measured
    m = lambda name, s, r: harness.Measurement(name, "g", s, 0.0, [s], s, s, r)  # noqa: E731
    env = {"device_name": "NVIDIA H200", "date": "2026-12-01"}
    harness.save(tmp_path / "reports" / "bench" / "klein-9b-cuda.json", "klein-9b", {}, [m("clean", 2.0, 1.0),
                 m("ko:ref->text", 2.4, 1.2)], env)
    assert main(["--cost"]) == 0
    out = capsys.readouterr().out
    assert "measured on NVIDIA H200 2026-12-01" in out and "PROJECTED" not in out
    # measured on an H100: its hours are H100-hours, and the table says it is projected from those times
    harness.save(tmp_path / "reports" / "bench" / "klein-9b-cuda.json", "klein-9b", {}, [m("clean", 2.0, 1.0)],
                 {"device_name": "NVIDIA H100 80GB HBM3", "date": "2026-12-02"})
    assert main(["--cost"]) == 0
    out = capsys.readouterr().out
    assert "| H100-hours |" in out and "| H200-hours |" not in out and "Projected from times measured on the H100" in out


def test_bench_results_go_to_an_ignored_folder_unless_asked(tmp_path, monkeypatch):
    from mechinterp.bench import cli

    monkeypatch.chdir(tmp_path)
    args = cli.argparse.ArgumentParser()
    cli.add_arguments(args)
    assert args.parse_args([]).out == "reports/bench" == cli.DEFAULT_OUT
    ignored = (Path(__file__).resolve().parents[1] / ".gitignore").read_text().splitlines()
    assert "reports/*" in ignored and "bench/results/*" not in ignored  # the default is ignored, the tracked one not


def test_generation_ratios_change_only_the_transformer_share():
    """A 1.5x transformer ratio on a transformer that is 0.8 s of a 2 s generation costs 0.4 s more: 1.2x."""
    ratios = cost.generation_ratios(2.0, 0.8, {"clean": 1.0, "ko:ref->text": 1.5, "ref_drop@single.9": 0.5})
    assert ratios == {"clean": 1.0, "ko:ref->text": pytest.approx(1.2), "ref_drop@single.9": pytest.approx(0.8)}


def test_peer_table_puts_each_peer_in_its_own_column():
    def m(name, op, by, ratio):
        return harness.Measurement(name, "g", ratio, 0.0, [ratio], ratio, ratio, ratio, 1.0, "", op, by)

    results = [m("clean", "clean", harness.ENGINE, 1.0), m("capture", "capture", harness.ENGINE, 1.02),
               m("capture [nnsight]", "capture", harness.NNSIGHT, 1.31), m("ko:a->b", "ko:a->b", harness.ENGINE, 0.97),
               m("ko:a->b [authors]", "ko:a->b", harness.AUTHORS, 1.4)]
    lines = harness.peer_table(results).splitlines()
    assert lines[0] == "| × clean | engine | authors' mask | nnsight |"
    assert lines[3] == "| capture | 1.02 | — | 1.31 |" and lines[4] == "| ko:a->b | 0.97 | 1.40 | — |"


def test_bench_cutoffs_are_first_severed_blocks_that_truncate():
    """The drop cutoffs: the 2nd block, the first single block, the colour site, the last block."""
    import mechinterp as mi

    assert settings.bench_sites(mi.SiteTable(8, 24)) == ("single.9", ["double.1", "single.0", "single.9", "single.23"])
    assert settings.bench_sites(mi.SiteTable(2, 2)) == ("single.0", ["double.1", "single.0", "single.1"])


def test_the_real_shape_pipeline_builder_assembles_a_working_pipeline():
    """``klein_9b_pipeline`` (the FLUX.2 VAE, a Qwen3 text encoder, any transformer) generates, and the
    engine's layout matches its joint sequence (a knockout checks the length in every block)."""
    import mechinterp as mi
    from PIL import Image

    from mechinterp.bench.shapes import QWEN3_8B, klein_9b_pipeline

    transformer = build_transformer(dict(SMALL, in_channels=128, joint_attention_dim=3 * 32))
    text = dict(QWEN3_8B, vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=28, num_attention_heads=2,
                num_key_value_heads=1, head_dim=16)
    model = mi.Model(klein_9b_pipeline(transformer, "cpu", torch.float32, text_config=text), max_sequence_length=32)
    edit = mi.Edit("draw a ball in this color", reference=Image.new("RGB", (64, 64), "red"), seed=0, height=64, width=64,
                   steps=1)
    layout = model.layout(edit)
    assert (layout.n_image, layout.n_ref) == (16, 16)  # VAE x8, 2x2 packing: (64 / 16)^2
    out = model.generate(edit, [mi.Knockout("ref", "text.padding")])
    assert out.array.shape == (64, 64, 3) and out.fired
