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

from mechinterp.bench import gpu_check
from mechinterp.bench.cost import KO_SETTINGS, reproduction

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu-check"


def test_gpu_check_dry_run_runs_every_phase_and_writes_one_json(tmp_path):
    pytest.importorskip("nnsight", reason="nnsight (the bench extra) is not installed: pip install -e '.[bench]'")
    before = sorted((ROOT / "bench" / "results").iterdir())
    out = tmp_path / "check.json"
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1")
    proc = subprocess.run([str(SCRIPT), "--dry-run", "--no-install", "--out", str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert sorted((ROOT / "bench" / "results").iterdir()) == before  # the dry run wrote only where it was told
    doc = json.loads(out.read_text())
    assert doc["ok"] and doc["dry_run"] and doc["environment"]["device"] == "cpu"
    assert list(doc["phases"]) == ["cuda-tests", "transformer", "pipeline", "cost"]
    assert all(p["ok"] and p["seconds"] >= 0 for p in doc["phases"].values())

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
    assert "## cost of a full reproduction (measured times)" in proc.stdout and f"wrote {out}" in proc.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: gpu-check would really run")
def test_gpu_check_without_a_gpu_asks_for_the_dry_run(capsys):
    assert gpu_check.main(["--out", "unused.json"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err and not Path("unused.json").exists()

