"""The claims on the organisms, decided by the claims suite itself (engine + ColorJudge, or GlyphJudge on the
identity organisms, + sequential test).

``mechinterp organisms claims`` prints the markdown table the README shows: for each organism and
each colour claim of the registry, k/n, the decision, and whether it is the one
``mechinterp/claims/organisms.toml`` expects.
"""

from __future__ import annotations

import contextlib
import tempfile

from mechinterp.organisms.expected import as_expected


def suite_decisions(names, samples: int | None = None, seed: int = 0, cache_dir=None) -> dict[str, dict]:
    """``{organism: {claim id: ClaimOutcome}}`` for every claim of the organism's family, as ``pytest claims/
    -m color`` (or, on the identity organisms, ``-m human``) decides it (``samples``: a cap on each claim's
    planned budget, as ``--samples``; ``cache_dir``: keep the generations there, else they go to a temporary
    folder that is removed on return)."""
    import mechinterp
    from mechinterp.claims import load_registry
    from mechinterp.judges import ColorJudge, GlyphJudge
    from mechinterp.suite.gencache import CachingModel, GenerationCache
    from mechinterp.suite.models import resolve_model
    from mechinterp.suite.runner import ClaimRunner

    registry = {c.id: c for c in load_registry()}
    out: dict[str, dict] = {}
    # without a cache folder the generations (100-400 MB) live in a temporary folder removed afterwards
    with contextlib.nullcontext(cache_dir) if cache_dir else tempfile.TemporaryDirectory(prefix="mechinterp-organisms-") as cache:
        for name in names:
            model = CachingModel(mechinterp.load(resolve_model(name), device="cpu"), GenerationCache(cache))
            family = "human" if dict(model.meta.tasks).get("human") == "glyph" else "color"
            judge = GlyphJudge() if family == "human" else ColorJudge()
            runner = ClaimRunner(model, lambda q, judge=judge: judge, samples=samples, seed=seed)
            # the family's own claims (a relation between families runs on two organisms: the suite's job decides it)
            out[name] = {c.id: runner.run(c, registry) for c in registry.values() if c.family == family}
    return out


def suite_table(results: dict[str, dict], expected: dict[str, dict[str, str]]) -> str:
    """Markdown: one row per claim, one column per organism (``k/n decision``, ✓ when as expected)."""
    names = list(results)
    claims = list(dict.fromkeys(cid for res in results.values() for cid in res))  # a family's claims per organism
    lines = ["| claim | hypothesis | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for cid in claims:
        first = next(res[cid] for res in results.values() if cid in res)
        cells = []
        for name in names:
            if cid not in results[name]:
                cells.append("–")
                continue
            o = results[name][cid]
            counts = f"{o.k}/{o.n}" if o.k2 is None else f"{o.k}/{o.n} vs {o.k2}/{o.n2}"
            ok = as_expected(expected, name, cid, o.decision.value)
            mark = "" if ok is None else (" ✓" if ok else f" ✗ (expected {expected[name][cid]})")
            cells.append(f"{counts} {o.decision.value}{mark}")
        hyp = str(first.claim.hypothesis).replace("|", "\\|")
        lines.append(f"| `{cid}` | {hyp} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
