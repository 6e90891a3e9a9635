"""The up-front prerequisites message names every claim the run then skips, under every reason it is skipped
for (data dir, judge, API key, a site the model lacks), and nothing else (issue 30)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import mechinterp.claims  # noqa: F401  (numpy/scipy loaded once, before pytester's in-process runs)

pytest_plugins = ["pytester"]
CLAIMS = Path(__file__).resolve().parents[1] / "claims"
HEADER = re.compile(r"mechinterp: missing prerequisites \(the claims that need them are skipped\): (\d+) of (\d+) claims")
# the skip reasons the runner gives, by kind (a site's names the site: its kind is that site)
KINDS = [("data", r"data dir\b|task family '\w+' is not available"), ("judge", r"--mi-judge color answers only"),
         ("key", r"ANTHROPIC_API_KEY is not set|the Anthropic judge needs ANTHROPIC_API_KEY"),
         ("site", r"(site '[\w.]+') does not exist")]


def _kind(reason: str) -> str:
    for kind, pattern in KINDS:
        if (m := re.match(pattern, reason)):
            return m.group(1) if kind == "site" else kind
    raise AssertionError(f"a skip reason of no known kind: {reason}")


def _announced(out: str) -> tuple[tuple[int, int], dict[str, tuple[int, set[str]]]]:
    """The message's header counts and, per reason, the count it gives and the claim ids it lists."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if HEADER.match(line))
    items: list[str] = []
    for line in lines[start + 1:]:
        if line.startswith("  - "):
            items.append(line[4:])
        elif line.startswith("      ") and items:
            items[-1] += " " + line.strip()
        else:
            break
    reasons = {}
    for item in items:
        reason, count, ids = re.fullmatch(r"(.*) for (\d+) claims?(?:: (.*))?", item).groups()
        reasons[reason] = (int(count), set(ids.split(", ")) if ids else set())
    return tuple(map(int, HEADER.match(lines[start]).groups())), reasons


@pytest.fixture
def suite(pytester, monkeypatch):
    """The shipped claim modules in a pytester folder, with no key, no data dir, no model named."""
    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "MECHINTERP_DATA_DIR", "MECHINTERP_STRICT",
                "MECHINTERP_MODEL"):
        monkeypatch.delenv(var, raising=False)
    for f in CLAIMS.glob("test_*.py"):
        pytester.path.joinpath(f.name).write_text(f.read_text())
    return pytester


@pytest.mark.parametrize("flags", [[], ["--mi-judge", "color", "--mi-data-dir", "EMPTY"]], ids=["plain", "judge-color-empty-data-dir"])
def test_the_message_names_exactly_the_claims_the_run_skips(suite, tmp_path, flags):
    """On the default organism, ``pytest claims/ -m "style or scene"``: the claims announced (under any reason)
    are the claims skipped in results.json, each reason's count is the ids it lists, the header counts them and
    the collected claims, and each claim's recorded skip reason is one it was announced under."""
    (tmp_path / "empty").mkdir()
    flags = [str(tmp_path / "empty") if f == "EMPTY" else f for f in flags]
    run = suite.runpytest("-m", "style or scene", "--mi-report", str(tmp_path / "run"),
                          "--mi-cache-dir", str(tmp_path / "cache"), *flags)
    out = run.stdout.str()
    assert run.ret == pytest.ExitCode.OK, out
    (skipped_n, collected), reasons = _announced(out)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    skipped = {cid for cid, r in results.items() if r["decision"] == "skipped"}
    announced = set().union(*(ids for _, ids in reasons.values()))
    assert announced == skipped and skipped_n == len(skipped) and collected == len(results)
    assert all(count == len(ids) for count, ids in reasons.values()), reasons
    for cid in skipped:
        kinds = {_kind(reason) for reason, (_, ids) in reasons.items() if cid in ids}
        assert _kind(results[cid]["note"]) in kinds, (cid, results[cid]["note"], kinds)
    expected_kinds = {"data", "site 'double.5'", "site 'double.6'", "site 'double.7'"} | (
        {"judge"} if "color" in flags else {"key"})
    assert {_kind(reason) for reason in reasons} == expected_kinds


def test_under_q_the_message_gives_counts_not_ids(suite, tmp_path):
    """``-q``: one line per reason with its count, no id list; the counts are the full message's."""
    args = ["-m", "style", "--collect-only", "--mi-report", str(tmp_path / "run")]
    full, quiet = suite.runpytest(*args).stdout.str(), suite.runpytest(*args, "-q").stdout.str()
    head, reasons = _announced(full)
    quiet_head, quiet_reasons = _announced(quiet)
    assert quiet_head == head and head[0] > 0
    assert {r: (n, set()) for r, (n, _) in reasons.items()} == quiet_reasons
