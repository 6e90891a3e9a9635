"""The bench harness and the cost model (no timing is asserted: timings live in bench/results)."""

from __future__ import annotations

import json

import pytest

from mechinterp.bench import cost, harness
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
    text = cost.report(measured)
    assert "**total**" in text and "paper: 18 H200-hours" in text


def test_harness_measures_and_saves(tiny_model, edit, tmp_path):
    settings = [s for s in harness.pipeline_settings(tiny_model, edit, batch=2, dense=False)
                if s.name in ("clean", "ko:ref->text", "batch x2 (per edit)")]
    results = harness.run_bench(settings, "cpu", repeats=1, log=lambda *a: None)
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
