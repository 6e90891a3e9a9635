"""``bench/gpu-check`` (issue 18): the dry run does every phase on the tiny model on the CPU and
writes one JSON; without a GPU and without ``--dry-run`` it refuses. Timings are not asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mechinterp.bench import cost as cost_mod
from mechinterp.bench import gpu_check
from mechinterp.bench.cost import KO_SETTINGS, reproduction

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu-check"


def test_gpu_check_dry_run_runs_every_phase_and_writes_one_json(tmp_path):
    pytest.importorskip("nnsight", reason="nnsight (the bench extra) is not installed: pip install -e '.[bench]'")
    before = sorted((ROOT / "bench" / "results").iterdir())
    out, copies = tmp_path / "check.json", tmp_path / "OUT"
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1", OUT=str(copies))
    proc = subprocess.run([str(SCRIPT), "--dry-run", "--no-install", "--out", str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert sorted((ROOT / "bench" / "results").iterdir()) == before  # the dry run wrote only where it was told
    doc = json.loads(out.read_text())
    assert doc["ok"] and doc["dry_run"] and doc["environment"]["device"] == "cpu"
    assert list(doc["phases"]) == ["cuda-tests", "transformer", "pipeline", "cost"]
    assert all(p["ok"] and p["seconds"] >= 0 for p in doc["phases"].values())
    # each phase has its budget and its flex compiles / fall-backs; the JSON and tables also land in $OUT
    assert {n: p["budget_s"] for n, p in doc["phases"].items()} == gpu_check.BUDGETS_S
    assert all(p["flex"]["fallbacks"] == 0 for p in doc["phases"].values())
    assert json.loads((copies / "check.json").read_text()) == doc and (copies / "check.md").exists()

    tests = doc["phases"]["cuda-tests"]
    if not torch.cuda.is_available():
        assert tests["passed"] == tests["failed"] == 0 and tests["skipped"] >= 10
        assert tests["skip_reasons"] and all("needs a CUDA GPU" in r for r in tests["skip_reasons"])

    names = {r["name"] for r in doc["phases"]["transformer"]["results"]}
    kos = {f"ko:{k}" for k in KO_SETTINGS}
    assert kos | {f"{k} [{m}]" for k in kos for m in ("dense", "authors")} <= names
    assert {"clean", "capture", "patch", "capture [hooks]", "patch [hooks]", "capture [nnsight]", "patch [nnsight]",
            "lens", "batch x2 (per edit)"} <= names
    assert sum(n.startswith("ref_drop@") for n in names) == 3  # the tiny model's 4 blocks give 3 distinct cutoffs
    assert all(r["ratio"] > 0 and r["median_s"] > 0 for r in doc["phases"]["transformer"]["results"])

    pipeline = doc["phases"]["pipeline"]
    by = {r["by"] for r in pipeline["results"]}
    assert {"engine", "engine flex", "engine dense", "authors' mask", "hooks", "nnsight"} == by
    assert pipeline["peak_mb"] > 0 and pipeline["config"]["size"] == [64, 64]

    cost = doc["phases"]["cost"]
    assert [x["what"] for x in cost["lines"]] == [line.what for line in reproduction()] and cost["total_hours"] == pytest.approx(sum(x["hours"] for x in cost["lines"]))
    assert all(x["source"].startswith("measured") for x in cost["lines"])
    assert "| × clean | engine | engine flex | engine dense | authors' mask | hooks | nnsight |" in proc.stdout
    assert "## cost of a full reproduction (dry run, tiny-model CPU times)" in proc.stdout and f"wrote {out}" in proc.stdout
    # a dry run is no GPU figure: no hours of a GPU, no verdict on the goal
    assert cost["hours_of"] == "CPU" and "| CPU-hours |" in cost["table"] and "H200-hours |" not in cost["table"]
    assert "meets the" not in proc.stdout and "misses the" not in proc.stdout and "says nothing about the 3-hour goal" in proc.stdout


def test_a_phase_past_its_budget_is_stopped_and_recorded(tmp_path):
    threads = torch.get_num_threads()
    out = tmp_path / "check.json"
    try:
        assert gpu_check.main(["--dry-run", "--tests", "", "--budget-scale", "0.0001", "--out", str(out)]) == 1
    finally:
        torch.set_num_threads(threads)
    doc = json.loads(out.read_text())
    assert list(doc["phases"]) == ["transformer", "pipeline"] and not doc["ok"]  # no measurements: no cost phase
    for name, p in doc["phases"].items():
        assert not p["ok"] and p["error"] == f"PhaseTimeout: {name} ran past its budget of {p['budget_s']:g} s"


def test_cost_tables_are_labelled_with_the_gpu_that_measured_them():
    assert [cost_mod.gpu_label(n) for n in ("NVIDIA H100 80GB HBM3", "NVIDIA H200", "NVIDIA A100-SXM4-80GB", "Weird GPU")] == \
        ["H100", "H200", "A100", "Weird GPU"]
    lines = reproduction(2.0)
    h100 = cost_mod.report(lines, gpu="H100", kind="measured")
    assert "| H100-hours |" in h100 and "H200-hours |" not in h100
    assert "Projected from times measured on the H100:" in h100 and "on this projection it misses the 3-hour goal" in h100
    assert "Projected" in cost_mod.report(reproduction()) and "| H200-hours |" in cost_mod.report(reproduction())
    with pytest.raises(ValueError, match="unknown cost kind 'guess'; valid kinds: projected, measured, dry-run"):
        cost_mod.report(lines, kind="guess")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: gpu-check would really run")
def test_gpu_check_without_a_gpu_asks_for_the_dry_run(capsys):
    assert gpu_check.main(["--out", "unused.json"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err and not Path("unused.json").exists()

