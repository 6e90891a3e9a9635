"""Faults: each bad input is one clear error before anything runs (or, for a model that will not
load, one error that stops the run), never a traceback per claim or a silent remap."""

from __future__ import annotations

import pytest

import mechinterp as mi
import mechinterp.claims  # noqa: F401  (numpy/scipy/torch imported once, outside pytester's in-process runs,
import mechinterp.report.power  # noqa: F401  which drop the modules they import: torch cannot be imported twice)
from mechinterp.suite.models import model_outline
from mechinterp.suite.runner import ClaimRunner, ClaimSkipped

pytest_plugins = ["pytester"]

CLAIM = """
schema = 1

[[claim]]
id = "{cid}"
statement = "A user's claim."
family = "color"
tasks = ["color"]
experiment = {experiment}
question = "{question}"
polarity = "pass"
markers = ["color", "{marker}"]
hypothesis = "rate >= 0.5"
"""
KO = '{ name = "knockout", source = "ref", dest = "%s", blocks = "all" }'
LENS = '{ name = "t2i_lens", site = "%s", same_layer = true, steps = 1, tokens = "text" }'


def claim_file(cid="knockout[ref->text.template]-color", experiment=KO % "text.template",
               question="ko_text_padding.color", marker="knockout") -> str:
    return CLAIM.format(cid=cid, experiment=experiment, question=question, marker=marker)


RAN = """
import pathlib, pytest

@pytest.mark.claims(experiment="knockout", family="color")
def test_knockout(claim, check_claim):
    pathlib.Path("ran").write_text(claim.id)
    check_claim(claim)
"""


def _one_error(result, *patterns):
    out = result.stdout.str() + result.stderr.str()
    for p in patterns:
        assert p in out, (p, out[-3000:])
    assert "Traceback" not in out and len(out.splitlines()) < 40, out[-3000:]


def _refused_before_any_claim(pytester, args, *patterns):
    """Run the knockout claims with ``args``: one usage error holding ``patterns``, and no claim ran."""
    pytester.makepyfile(test_claims=RAN)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    _one_error(result, *patterns)
    assert not (pytester.path / "ran").exists()


@pytest.mark.parametrize("model", ["/no/such/path", "./nowhere"])
def test_a_model_path_that_is_no_folder_is_a_usage_error(pytester, model):
    _refused_before_any_claim(pytester, ["--model", model], f"--mi-model {model!r}: no such folder, and not a Hugging Face repo id")


def test_an_uncached_hub_id_offline_is_a_usage_error(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    pytester.makepyfile(test_claims=RAN)
    result = pytester.runpytest("--model", "no-owner/no-such-model")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    _one_error(result, "--mi-model 'no-owner/no-such-model': not in the Hugging Face cache and HF_HUB_OFFLINE is set")


def test_a_model_that_does_not_load_stops_the_run_with_one_error(pytester, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text('{"_class_name": "Flux2KleinPipeline"}')
    pytester.makepyfile(test_claims=RAN)
    result = pytester.runpytest("--model", str(broken), "--cache-dir", str(tmp_path / "cache"),
                                "--report", str(tmp_path / "run"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = result.stdout.str()
    assert out.count(f"--mi-model {str(broken)!r} cannot be loaded") == 1, out[-3000:]
    assert "1 passed" not in out and "failed" not in out.splitlines()[-1]


def test_a_token_group_typo_is_one_collection_error(pytester):
    pytester.path.joinpath("mine.claims.toml").write_text(claim_file(experiment=KO % "text.paddin"))
    result = pytester.runpytest("mine.claims.toml")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    _one_error(result, "mine.claims.toml", "dest 'text.paddin' is not a token group; valid groups: text, text.content")


@pytest.mark.parametrize("cid", ["knockout[ref->text.padding]-color", "mine"])
def test_a_duplicate_claim_id_is_one_collection_error(pytester, cid):
    pytester.path.joinpath("a.claims.toml").write_text(claim_file(cid="mine"))
    pytester.path.joinpath("b.claims.toml").write_text(claim_file(cid=cid))
    result = pytester.runpytest("a.claims.toml", "b.claims.toml")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    where = "a.claims.toml" if cid == "mine" else "the paper's registry"
    _one_error(result, f"b.claims.toml: claim id {cid!r} is already defined (in ", where, "must be unique")


def test_a_site_not_on_the_model_is_a_collection_error_not_a_remap(pytester):
    pytester.path.joinpath("mine.claims.toml").write_text(
        claim_file(cid="lens[double.99]-color", experiment=LENS % "double.99", question="lens.color", marker="lens"))
    result = pytester.runpytest("mine.claims.toml", "--model", "padding-routed")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    _one_error(result, "claim 'lens[double.99]-color': site 'double.99' does not exist on model 'padding-routed'")


def test_organism_sites_map_paper_sites_only():
    table, meta = model_outline("padding-routed")

    class Outline:
        model_id, table_, meta_ = "padding-routed", None, None

    stub = Outline()
    stub.table, stub.meta = table, meta
    runner = ClaimRunner(stub, judge_for=None)
    assert runner.site("single.9", "color") == "double.0"  # the paper's binding site maps to the organism's
    assert runner.site("single.9", "color", cutoff=True) == "double.1"
    with pytest.raises(ValueError, match="site 'double.99' does not exist on model 'padding-routed'"):
        runner.site("double.99", "color")
    with pytest.raises(ClaimSkipped):  # a paper site a model lacks (no binding family): skipped with the reason
        runner.site("single.20", "style")


def test_steps_beyond_the_run_are_an_error(tiny_model, edit):
    for item in (mi.Capture("single.0", steps=[edit.steps]), mi.Knockout("ref", "text", steps=[99])):
        with pytest.raises(ValueError, match=f"go beyond this run's {edit.steps} steps"):
            tiny_model.generate(edit, [item] if isinstance(item, mi.Knockout) else (), capture=[item] if isinstance(item, mi.Capture) else ())
    gen = tiny_model.generate(edit, capture=[mi.Capture("single.0", steps=[edit.steps - 1])])
    assert set(gen.captures) == {("single.0", edit.steps - 1)}


def _unwritable_dirs(tmp_path):
    """Folders in which no file can be created: ``/proc`` for anyone, root included (for whom permission bits
    stop nothing), and a ``chmod 555`` folder where the tests do not run as root."""
    import os

    dirs = ["/proc"]
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        dirs.append(str(locked))
    return dirs


def test_a_cache_dir_that_cannot_be_written_is_a_usage_error(pytester, tmp_path):
    pytester.makepyfile(test_claims=RAN)
    for folder in _unwritable_dirs(tmp_path):
        result = pytester.runpytest("--mi-cache-dir", folder, "--mi-report", str(tmp_path / "run"))
        assert result.ret == pytest.ExitCode.USAGE_ERROR, folder
        _one_error(result, f"--mi-cache-dir {folder!r}: no file can be created there (",
                   "expected a writable folder for the generation and verdict caches")
        assert not (pytester.path / "ran").exists()


def test_a_cache_dir_that_is_a_file_or_under_one_is_a_usage_error(pytester, tmp_path):
    pytester.makepyfile(test_claims=RAN)
    target = tmp_path / "cache.db"
    target.write_text("not a folder")
    for given, where in ((target, "is a file"), (target / "sub", f"{str(target)!r} above it is a file")):
        result = pytester.runpytest("--mi-cache-dir", str(given))
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        _one_error(result, f"--mi-cache-dir {str(given)!r}: {where}; expected a folder (new or existing) for the "
                           "generation and verdict caches")
        assert not (pytester.path / "ran").exists() and target.read_text() == "not a folder"


def test_a_cache_dir_that_cannot_be_created_stops_the_run_with_one_error(pytester, tmp_path):
    """A new cache folder is made by the first claim (a session without claims leaves none): where it cannot
    be made, that is one error for the run, not a failure per claim."""
    pytester.makepyfile(test_claims=RAN)
    result = pytester.runpytest("-k", "knockout[ref-to-image]-color or knockout[ref-to-text]-color",
                                "--mi-cache-dir", "/proc/mechinterp-cache", "--mi-report", str(tmp_path / "run"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = result.stdout.str()
    assert out.count("--mi-cache-dir /proc/mechinterp-cache: cannot create the cache folder") == 1, out[-3000:]
    assert "passed" not in out and "failed" not in out.splitlines()[-1]


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "cpu:0", "mps:1", "gpu"])
def test_a_device_torch_cannot_use_here_is_a_usage_error(pytester, device):
    _refused_before_any_claim(pytester, ["--mi-device", device],
                              f"--mi-device {device!r}: expected cpu, cuda, cuda:N (N: a GPU index) or mps")


def test_a_gpu_this_machine_lacks_is_a_usage_error(pytester):
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    seen = f"{count} CUDA GPU{'s' * (count != 1)} (cuda:0 to cuda:{count - 1})" if count else "no CUDA GPU"
    _refused_before_any_claim(pytester, ["--mi-device", "cuda:99"],
                              f"--mi-device 'cuda:99': torch {torch.__version__} sees {seen} here; expected cpu, cuda")


@pytest.mark.parametrize("budget", ["0", "$0", "-5"])
def test_a_budget_of_nothing_is_a_usage_error_not_a_run_that_skips_every_claim(pytester, budget):
    _refused_before_any_claim(pytester, ["--mi-budget", budget],
                              f"--mi-budget {budget!r}: expected a positive number of generations ('2000') or dollars ('$25')")
