"""JUnit XML for claims: one testcase per claim, the evidence as properties.

:func:`junit_properties` is the single definition of the property names; the pytest
plugin passes the same pairs to ``record_property`` (which pytest-xdist carries from the
workers to the controller's ``--junitxml``), and :func:`write_junit` writes them for a
finished run folder. ``ci_low``/``ci_high`` are the plain 95 % interval (Wilson; paired score
interval for a relation, Newcombe's for an unpaired one: ``arms``), ``decision_low``/``decision_high``
the interval the sequential test decided on (at ``decision_confidence``), ``budget``/``power`` the
claim's plan. A refuted claim is a ``<failure>``, an inconclusive or skipped one ``<skipped>``, one
that raised an ``<error>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from mechinterp.report.run import ClaimResult, Run, atomic_write, decision_counts


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


def write_junit(run: Run, path: str | Path | None = None) -> Path:
    """Write ``junit.xml`` (default: inside the run folder) with one testcase per claim."""
    path = Path(path) if path else run.path / "junit.xml"
    counts = decision_counts(run.results)
    suite = ET.Element("testsuite", name="mechinterp.claims", tests=str(len(run.results)),
                       failures=str(counts["refuted"]), skipped=str(counts["inconclusive"] + counts["skipped"]),
                       errors=str(counts["error"]))
    meta = run.metadata
    suite_props = ET.SubElement(suite, "properties")
    for name in ("model", "revision", "fingerprint", "judge", "seed", "samples", "git_commit", "judge_cost_usd"):
        ET.SubElement(suite_props, "property", name=name, value=_fmt(getattr(meta, name)))
    for cid, res in run.results.items():
        case = ET.SubElement(suite, "testcase", name=cid, classname="claims." + cid.split("[", 1)[0])
        props = ET.SubElement(case, "properties")
        for name, value in junit_properties(res):
            ET.SubElement(props, "property", name=name, value=value)
        summary = f"{cid}: {res.run_text} (k={res.k}, n={res.n}); {res.hypothesis} -> {res.decision}"
        if res.decision_low is not None:
            summary += f" on [{res.decision_low:.4f}, {res.decision_high:.4f}] at {100 * res.decision_confidence:.2f} %"
        if res.note:
            summary += f" ({res.note})"
        if res.decision == "refuted":
            ET.SubElement(case, "failure", message=summary, type="ClaimRefuted")
        elif res.decision == "inconclusive":
            ET.SubElement(case, "skipped", message=summary)
        elif res.decision == "skipped":
            ET.SubElement(case, "skipped", message=f"{cid}: skipped: {res.note}")
        elif res.decision == "error":
            ET.SubElement(case, "error", message=f"{cid}: error: {res.note}", type="ClaimError")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    atomic_write(path, ET.tostring(root, encoding="unicode", xml_declaration=True))
    return path
