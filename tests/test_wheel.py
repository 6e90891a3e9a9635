"""mechinterp as a user installs it: a built wheel in a fresh virtual environment, outside the checkout.

The wheel must carry the registry, the organisms' expectations, the four organisms and the paper's
claim modules; installed, README's command runs the paper's colour claims on the default organism,
and a folder holding nothing but a ``*.claims.toml`` file is a claims suite of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from mechinterp.claims import load_registry
from mechinterp.organisms.expected import expected_decisions
from mechinterp.testing.claims import knockout_claim_toml

REPO = Path(__file__).resolve().parents[1]
#: what a checkout may hold besides the sources (never part of a build)
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "reports", ".mechinterp-cache",
                                     "__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")
USER_CLAIMS = knockout_claim_toml(
    "text", cid="knockout[ref->text]-color-lab", question="ko_text.color",
    statement="Our lab's copy of Table 2's colour knockout: blocking ref->text destroys the colour.")


def _run(cmd, **kwargs) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert out.returncode == 0, f"{cmd} exited {out.returncode}\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel --no-deps`` of a clean copy of this checkout (no stale build/ folder can leak in)."""
    root = tmp_path_factory.mktemp("build")
    shutil.copytree(REPO, root / "src", ignore=NOT_SOURCES)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", root / "src",
          "-w", root / "dist"])
    (built,) = (root / "dist").glob("mechinterp-*.whl")
    return built


def test_the_wheel_holds_every_package_file_and_the_claim_modules(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    package = [p for p in (REPO / "mechinterp").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    missing = [p.relative_to(REPO).as_posix() for p in package if p.relative_to(REPO).as_posix() not in names]
    assert not missing, f"files of the package missing from the wheel: {missing[:10]}"
    modules = sorted(p.name for p in (REPO / "claims").glob("*.py"))
    assert modules and all(f"mechinterp/claims/paper/{m}" in names for m in modules)
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "mechinterp").rglob("__init__.py")}
    assert listed == found | {"mechinterp.claims.paper"}  # a new subpackage must be listed in pyproject.toml
    assert {"mechinterp/claims/registry.toml", "mechinterp/claims/organisms.toml"} <= names


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed; the test environment's own site-packages supply torch and
    the other dependencies (added as plain paths: nothing of the checkout's editable install comes along)."""
    root = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", root])
    python = root / "bin" / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    parents = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (purelib / "test-environment.pth").write_text("".join(f"{p}\n" for p in parents))
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel])
    return root


def _clean_env() -> dict[str, str]:
    """The environment without anything that would import the checkout or steer pytest or the suite."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_PLUGINS") and not k.startswith(("MECHINTERP_", "PYTEST_XDIST"))}


@pytest.mark.slow
def test_installed_wheel_runs_the_paper_claims_and_a_claims_only_folder(venv, tmp_path):
    python, env = venv / "bin" / "python", _clean_env()
    where = _run([python, "-c", "import mechinterp.claims.paper as p, mechinterp.resources as r; "
                  "print(p.__file__); print(r.package_path('organisms', 'shipped', 'padding-routed'))"],
                 cwd=tmp_path, env=env).stdout.split()
    assert all(Path(w).is_relative_to(venv) for w in where), where  # imported from the venv, not the checkout

    # README's main job from anywhere: the paper's claim modules of the installed package on the embedded
    # default organism (the colour knockout claims here; CI runs every colour claim from the checkout)
    elsewhere, cache = tmp_path / "elsewhere", tmp_path / "cache"
    elsewhere.mkdir()
    _run([python, "-m", "pytest", "--pyargs", "mechinterp.claims.paper", "-m", "color and knockout",
          "-p", "no:cacheprovider", "--cache-dir", cache], cwd=elsewhere, env=env, timeout=900)
    (run,) = (elsewhere / "reports").iterdir()  # the run folder lands where pytest ran, not in site-packages
    results = json.loads((run / "results.json").read_text())
    selected = {c.id for c in load_registry() if {"color", "knockout"} <= set(c.markers)}
    expected = expected_decisions()["padding-routed"]
    assert selected and set(results) == selected, results
    assert {c: r["decision"] for c, r in results.items()} == {c: expected.get(c, "holds") for c in selected}, results
    meta = json.loads((run / "run.json").read_text())
    assert meta["model"] == "padding-routed" and Path(meta["registry"][0]).is_relative_to(venv)
    assert (run / "report.html").is_file()

    # a user's repository holding nothing but a claims file
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "lab.claims.toml").write_text(USER_CLAIMS)
    out = _run([python, "-m", "pytest", "-p", "no:cacheprovider", "--cache-dir", cache, "--report", tmp_path / "lab-run"],
               cwd=lab, env=env, timeout=600)
    assert "1 passed" in out.stdout, out.stdout
    lab_results = json.loads((tmp_path / "lab-run" / "results.json").read_text())
    assert lab_results["knockout[ref->text]-color-lab"]["decision"] == "holds"
    assert sorted(p.name for p in lab.iterdir()) == ["lab.claims.toml"]  # reports went where we said
