"""JUnit XML for claims: one testcase per claim, its evidence as visible text.

The file validates against the common JUnit schema (``junit-10.xsd``, the one pytest's
``junit_family = xunit2`` targets; ``tests/data/junit-10.xsd``), so a testcase holds no
``<properties>``: the run's settings are properties of the testsuite, and each claim's evidence is the
``<system-out>`` of its testcase (what the GitHub, GitLab and Jenkins readers show): a summary line
(:func:`claim_summary`: decision, k/n, rate, plain 95 % interval, deciding interval, budget,
hypothesis) and one ``name: value`` line per :func:`junit_properties` pair. ``ci_low``/``ci_high``
are the plain 95 % interval (Wilson; paired score interval for a relation, Newcombe's for an unpaired
one: ``arms``), ``decision_low``/``decision_high`` the interval the sequential test decided on (at
``decision_confidence``), ``budget``/``power`` the claim's plan.

A refuted claim is a ``<failure>`` (the summary its message), an inconclusive one ``<skipped>`` (a
``<failure>`` where pytest failed it: ``--mi-strict``), a skipped one ``<skipped>``, one that raised an
``<error>``. A claim a suite run ran is named as pytest's own ``--junitxml`` names its test (the
``classname`` and ``name`` the plugin recorded in the run's ``tests.json``, by pytest's own rule), so a CI
reader that ingests both files counts each claim once; a claim with no recorded test (a run folder written outside pytest) is
``classname="claims.<family stem>"``, ``name=<claim id>``. Testcases carry ``time`` (pytest's
seconds for the test), the testsuite ``time`` and ``timestamp`` (the run's start, else its first test's).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

from mechinterp.report.run import ClaimResult, Run, atomic_write


def _fmt(x: object) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


def junit_properties(result: ClaimResult) -> list[tuple[str, str]]:
    """``(name, value)`` pairs describing one claim's evidence, in a stable order."""
    pairs = [
        ("claim_id", result.claim_id), ("decision", result.decision), ("hypothesis", result.hypothesis),
        ("k", result.k), ("n", result.n), ("abstained", result.abstained), ("rate", result.rate),
        ("ci_low", result.ci_low), ("ci_high", result.ci_high), ("run_text", result.run_text),
        ("decision_low", result.decision_low), ("decision_high", result.decision_high),
        ("decision_confidence", result.decision_confidence),
        ("looks", None if result.looks is None else ",".join(map(str, result.looks))),
        ("budget", result.budget), ("power", result.power), ("design_point", result.design_point),
        ("paper_rate", result.paper_rate), ("paper_text", result.paper_text),
    ]
    if result.a is not None:
        pairs += [("a", result.a), ("b", result.b), ("k2", result.k2), ("n2", result.n2),
                  ("arms", "unpaired" if result.unpaired else "paired")]
        pairs += [(f"pairs_{k}", v) for k, v in (result.pairs or {}).items()]
    if result.note:
        pairs.append(("note", result.note))
    return [(name, _fmt(value)) for name, value in pairs]


def claim_summary(result: ClaimResult) -> str:
    """One line a CI reader shows for a claim: id, decision, k/n (both arms of a relation), rate, the plain
    95 % interval, the interval the decision was made on, the budget and the hypothesis."""
    r = result
    counts = f"k={r.k}/n={r.n}" + ("" if r.a is None else f" vs k2={r.k2}/n2={r.n2}")
    text = f"{r.claim_id}: {r.decision}: {counts}, {r.run_text}, plain 95 % [{r.ci_low:.4f}, {r.ci_high:.4f}]"
    if r.decision_low is not None:
        text += f", decided on [{r.decision_low:.4f}, {r.decision_high:.4f}] at {100 * r.decision_confidence:.2f} %"
    if r.budget is not None:
        text += f", budget {r.budget}"
    text += f"; hypothesis {r.hypothesis}"
    return text + (f" ({r.note})" if r.note else "")


def claim_text(result: ClaimResult) -> str:
    """A claim's evidence as text: :func:`claim_summary`, then ``name: value`` per :func:`junit_properties`
    pair (a testcase's ``<system-out>``; the plugin adds it to each claim test's report too)."""
    return "\n".join([claim_summary(result)] + [f"{name}: {value}" for name, value in junit_properties(result)])


def read_claim_text(text: str) -> dict[str, str]:
    """The :func:`junit_properties` pairs back from a :func:`claim_text` (a testcase's ``<system-out>``), for
    tools reading ``junit.xml``; the ``note``, last, keeps its line breaks."""
    out: dict[str, str] = {}
    lines = text.split("\n")[1:]
    for i, line in enumerate(lines):
        name, sep, value = line.partition(": ")
        if name == "note":
            out["note"] = "\n".join([value] + lines[i + 1:])
            break
        if not sep:
            raise ValueError(f"not a claim's evidence line (name: value): {line!r}")
        out[name] = value
    return out


def read_junit(path: str | Path) -> dict[str, ET.Element]:
    """A ``junit.xml`` written by :func:`write_junit`: claim id -> its testcase (named as pytest names the test,
    so the id is read from the evidence text)."""
    cases = ET.parse(path).getroot().iter("testcase")
    return {read_claim_text(case.findtext("system-out") or "")["claim_id"]: case for case in cases}


def _verdict(result: ClaimResult, outcome: str | None) -> tuple[str, dict[str, str]] | None:
    """The testcase's ``failure``/``skipped``/``error`` element (tag, attributes), ``None`` for a pass."""
    cid, summary = result.claim_id, claim_summary(result)
    if result.decision == "refuted":
        return "failure", {"message": summary, "type": "ClaimRefuted"}
    if result.decision == "inconclusive":
        if outcome == "failed":  # pytest failed it (--mi-strict): not a skip here either
            return "failure", {"message": summary + " (a failure under --mi-strict)", "type": "ClaimInconclusive"}
        return "skipped", {"message": summary, "type": "ClaimInconclusive"}
    if result.decision == "skipped":
        return "skipped", {"message": f"{cid}: skipped: {result.note}"}
    if result.decision == "error":
        return "error", {"message": f"{cid}: error: {result.note}", "type": "ClaimError"}
    return None


def _seconds(x: float) -> str:
    return f"{x:.3f}"


def write_junit(run: Run, path: str | Path | None = None) -> Path:
    """Write ``junit.xml`` (default: inside the run folder) with one testcase per claim (see the module
    docstring), valid against the common JUnit schema."""
    path = Path(path) if path else run.path / "junit.xml"
    meta = run.metadata
    suite = ET.Element("testsuite", name="mechinterp.claims", tests=str(len(run.results)))
    suite_props = ET.SubElement(suite, "properties")
    for name in ("model", "revision", "fingerprint", "judge", "seed", "samples", "git_commit", "judge_cost_usd"):
        ET.SubElement(suite_props, "property", name=name, value=_fmt(getattr(meta, name)))
    counts = {"failure": 0, "skipped": 0, "error": 0}
    total = 0.0
    for cid, res in run.results.items():
        test = run.tests.get(cid, {})
        if test.get("name"):
            classname, name = test.get("classname", ""), test["name"]
        else:
            classname, name = "claims." + cid.split("[", 1)[0], cid
        case = ET.SubElement(suite, "testcase", classname=classname, name=name)
        if test.get("seconds") is not None:
            case.set("time", _seconds(test["seconds"]))
            total += test["seconds"]
        verdict = _verdict(res, test.get("outcome"))
        if verdict is not None:
            ET.SubElement(case, verdict[0], verdict[1])
            counts[verdict[0]] += 1
        ET.SubElement(case, "system-out").text = claim_text(res)
    suite.set("failures", str(counts["failure"]))
    suite.set("errors", str(counts["error"]))
    suite.set("skipped", str(counts["skipped"]))
    wall = meta.wall_seconds
    if wall is not None or run.tests:
        suite.set("time", _seconds(wall if wall is not None else total))
    starts = [t["started"] for t in run.tests.values() if t.get("started") is not None]
    started = meta.started if meta.started is not None else min(starts, default=None)  # no model loaded: the tests'
    if started is not None:
        suite.set("timestamp", datetime.fromtimestamp(started).astimezone().isoformat(timespec="seconds"))
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    atomic_write(path, ET.tostring(root, encoding="unicode", xml_declaration=True))
    return path
