"""The suite's CPU thread policy (one torch thread per claim process unless asked) and its bench row."""

from __future__ import annotations

import json

import pytest
import torch

from mechinterp.bench import load
from mechinterp.suite.session import SuiteSession
from mechinterp.suite.settings import OPTIONS, resolve
from mechinterp.suite.threads import apply_thread_policy, thread_count


class _Config:
    def __init__(self, cli=None):
        self.cli = cli or {}

    def getoption(self, name, default=None):
        return self.cli.get(name.removeprefix("mechinterp_"), default)

    def getini(self, name):
        return None


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_thread_count_policy():
    assert thread_count(None, "cpu") == 1
    assert thread_count(None, "cuda:0") is None  # a GPU run keeps torch's own choice
    assert thread_count(3, "cuda") == 3 and thread_count(2, "cpu") == 2


def test_threads_option(monkeypatch):
    for o in OPTIONS:
        monkeypatch.delenv(o.env, raising=False)
    assert resolve(_Config()).threads is None
    assert resolve(_Config({"threads": "3"})).threads == 3
    monkeypatch.setenv("MECHINTERP_THREADS", "2")
    assert resolve(_Config()).threads == 2
    with pytest.raises(ValueError, match=r"--mi-threads '0': must be >= 1"):
        resolve(_Config({"threads": "0"}))


def test_apply_sets_torch_threads(restore_threads):
    torch.set_num_threads(3)
    assert apply_thread_policy(None, "cpu") == 1 and torch.get_num_threads() == 1
    assert apply_thread_policy(2, "cpu") == 2 and torch.get_num_threads() == 2
    assert apply_thread_policy(None, "cuda") == 2  # left as it was


def test_claim_session_on_cpu_runs_one_thread(tmp_path, monkeypatch, restore_threads):
    for o in OPTIONS:
        monkeypatch.delenv(o.env, raising=False)
    settings = resolve(_Config({"device": "cpu", "cache_dir": str(tmp_path / "cache")}))
    torch.set_num_threads(3)
    sess = SuiteSession(settings, tmp_path / "run")
    sess.model  # noqa: B018 - loading the model applies the policy
    assert torch.get_num_threads() == 1 and sess.threads == 1
    torch.set_num_threads(3)
    asked = SuiteSession(resolve(_Config({"device": "cpu", "threads": "2", "cache_dir": str(tmp_path / "c")})), tmp_path / "r")
    asked.model  # noqa: B018
    assert torch.get_num_threads() == 2 and asked.threads == 2


def test_load_bench_times_the_job_quiet_and_loaded(tmp_path, monkeypatch):
    """The bench row in its tiny mode: a one-test colour job (the plugin active), quiet and beside one busy process."""
    (tmp_path / "test_one.py").write_text("import pytest, os\n\n@pytest.mark.color\ndef test_one():\n"
                                          "    assert os.environ['MECHINTERP_CACHE_DIR'].endswith('cache')\n")
    spawned = []
    real_spin = load.spin

    def spin(n):
        procs = real_spin(n)
        spawned.extend(procs)
        return procs

    monkeypatch.setattr(load, "spin", spin)
    result = load.measure(1, target=str(tmp_path), cwd=tmp_path)
    assert result.command[-6:] == [str(tmp_path), "-m", "color", "-q", "-p", "no:cacheprovider"][-6:]
    assert result.quiet.returncode == 0 and result.loaded.returncode == 0
    assert result.quiet.busy == 0 and result.loaded.busy == 1
    assert result.ratio == round(result.loaded.seconds / result.quiet.seconds, 3)
    assert 0 < result.quiet.cpu_seconds and 0 < result.loaded.core_share <= 1.5  # one process: at most ~a core
    assert len(spawned) == 1 and spawned[0].poll() is not None  # the spinner was stopped
    assert {p.name for p in tmp_path.iterdir()} <= {"test_one.py", "__pycache__"}  # cache and run folder were temporary
    assert json.loads(json.dumps(result.to_dict()))["ratio"] == result.ratio
    assert "x" + f"{result.ratio:.2f}" in result.line()
    with pytest.raises(ValueError, match="--load 0"):
        load.measure(0)
