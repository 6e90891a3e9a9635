"""Measuring organisms: I2I baseline accuracy and the paper's colour claims, with the organisms' colour check.

A claim's *rate* is measured exactly as the paper pools it (lens: reference colour visible in the
lens output and not in the T2I baseline; knockout: colour destroyed; reference drop: colour kept;
patching: the source colour reaches the target). A claim *holds* on an organism when its rate meets
the registry's hypothesis for it (``CLAIMS``: e.g. ``rate >= 0.80`` for the lens).
"""

from __future__ import annotations

from dataclasses import dataclass

from mechinterp.engine.edit import Edit
from mechinterp.engine.model import Model
from mechinterp.experiments import i2i_patch, knockout, ref_drop, t2i_lens
from mechinterp.organisms.data import (
    HELD_OUT,
    classify_color,
    classify_shape,
    instruction,
    reference_image,
)
from mechinterp.tasks.color import COLORS, OBJECTS, REPLICATES, color_pairs, color_task

#: the bar every shipped organism must pass: reference colour on the right shape
BASELINE_BAR = 0.90

#: claim id (as in ``claims/registry.toml``) -> (what is measured, comparison, threshold). The
#: thresholds are the registry's hypotheses; on an organism ``single.9`` means its colour site.
CLAIMS: dict[str, tuple[str, str, float]] = {
    "lens[single.9]-color": ("T2I Lens shows the reference colour", ">=", 0.80),
    "knockout[ref->text]-color": ("KO ref→text destroys the colour", ">=", 0.50),
    "knockout[ref->text.padding]-color": ("KO ref→text[padding] destroys the colour", ">=", 0.50),
    "knockout[ref->text.content]-color": ("KO ref→text[content] destroys the colour", "<", 0.50),
    "knockout[ref->image]-color": ("KO ref→image destroys the colour", "<", 0.50),
    "patching[single.9:text]-color": ("patching all text transfers the source colour", ">=", 0.80),
    "patching[single.9:text.padding]-color": ("patching padding transfers the source colour", ">=", 0.75),
    "patching[single.9:text.content]-color": ("patching content transfers the source colour", "<=", 0.05),
    "refdrop[single.9]-color": ("reference drop after the colour site destroys the colour", "<", 0.50),
    "refdrop[embed]-color": ("reference drop before block 0 destroys the colour", ">=", 0.50),
}
_OPS = {">=": lambda r, t: r >= t, "<": lambda r, t: r < t, "<=": lambda r, t: r <= t}


@dataclass(frozen=True)
class ClaimMeasure:
    """One claim measured on one organism: successes out of ``n`` and the decision."""

    claim: str
    hits: int
    n: int

    @property
    def rate(self) -> float:
        """Fraction of samples where the measured event happened."""
        return self.hits / self.n if self.n else float("nan")

    @property
    def decision(self) -> str:
        """``"holds"`` when the rate meets the claim's hypothesis (``CLAIMS``), else ``"refuted"``."""
        _, op, threshold = CLAIMS[self.claim]
        return "holds" if _OPS[op](self.rate, threshold) else "refuted"


def _size(model: Model) -> int:
    return int(model.meta.get("default_size", 32))


def _steps(model: Model) -> int:
    return int(model.meta.get("default_steps", 4))


def site_for(model: Model) -> str:
    """The binding site the colour experiments use on ``model`` (``single.9`` unless its metadata says otherwise)."""
    return model.table.name(model.meta.get("sites", {}).get("color", "single.9"))


def color_edit(model: Model, color: str, obj: str, replicate: int) -> Edit:
    """The colour task ``(color, obj, replicate)`` at the model's size: same instruction and seed as the suite's."""
    size = _size(model)
    seed = color_task(color, obj, replicate).seed
    return Edit(instruction(obj), reference_image(color, size), seed=seed, height=size, width=size, steps=_steps(model))


def eval_tasks(n: int | None = None, held_out_only: bool = False) -> list[tuple[str, str, int]]:
    """A fixed list of ``(colour, object, replicate)`` tasks, spread over colours and objects.

    ``n=None`` gives all 320 (or, with ``held_out_only``, the 40 of the held-out combinations).
    """
    combos = [(c, o) for c in COLORS for o in OBJECTS if not held_out_only or (c, o) in HELD_OUT]
    tasks = [(c, o, r) for r in range(REPLICATES) for c, o in combos]
    return tasks if n is None else tasks[:: max(1, len(tasks) // n)][:n]


def baseline_accuracy(model: Model, tasks) -> dict:
    """I2I baseline: fraction of ``tasks`` drawn in the reference colour on the right shape."""
    rows = []
    for c, o, r in tasks:
        img = model.generate(color_edit(model, c, o, r)).array
        rows.append({"color": c, "object": o, "replicate": r, "got_color": classify_color(img), "got_shape": classify_shape(img)})
    ok = [row["got_color"] == row["color"] and row["got_shape"] == row["object"] for row in rows]
    held = [k for k, row in zip(ok, rows) if (row["color"], row["object"]) in HELD_OUT]
    return {"n": len(ok), "correct": int(sum(ok)), "accuracy": sum(ok) / max(len(ok), 1),
            "held_out_n": len(held), "held_out_accuracy": sum(held) / len(held) if held else None, "rows": rows}


def measure_color_claims(model: Model, n: int = 16, site: str | None = None) -> dict[str, ClaimMeasure]:
    """Measure every colour claim on ``model`` over ``n`` tasks and ``n`` patching pairs (fixed lists)."""
    site = model.table.name(site) if site is not None else site_for(model)
    hits = {k: 0 for k in CLAIMS}
    for c, o, r in eval_tasks(n):
        edit = color_edit(model, c, o, r)
        base = model.generate(edit)
        lens = t2i_lens(model, edit, site, same_layer=True, lens_steps=1)
        hits["lens[single.9]-color"] += classify_color(lens.generations["lens_output"].array) == c != classify_color(lens.generations["t2i_baseline"].array)
        for dest in ("text", "text.padding", "text.content", "image"):
            out = knockout(model, edit, "ref", dest, baseline=base)
            hits[f"knockout[ref->{dest}]-color"] += classify_color(out.generations["knockout_output"].array) != c
        for cutoff, claim in ((site, "refdrop[single.9]-color"), ("embed", "refdrop[embed]-color")):
            hits[claim] += classify_color(ref_drop(model, edit, cutoff, baseline=base).generations["ref_drop_output"].array) != c
    pairs = color_pairs()
    for pair in pairs[:: max(1, len(pairs) // n)][:n]:
        src_meta, tgt_meta = pair.source.metadata, pair.target.metadata
        src = color_edit(model, src_meta["color"], src_meta["object"], src_meta["replicate"])
        tgt = color_edit(model, tgt_meta["color"], tgt_meta["object"], tgt_meta["replicate"])
        tgt_base = model.generate(tgt)
        for tokens in ("text", "text.padding", "text.content"):
            out = i2i_patch(model, src, tgt, site, tokens=tokens, target_baseline=tgt_base)
            hits[f"patching[single.9:{tokens}]-color"] += classify_color(out.generations["patched_output"].array) == src_meta["color"]
    return {k: ClaimMeasure(k, int(h), n) for k, h in hits.items()}


def claims_table(results: dict[str, dict[str, ClaimMeasure]], expected: dict[str, dict[str, str]] | None = None) -> str:
    """Markdown table: one row per claim, one column per organism, ``rate (decision)`` with a mark
    when an expected decision exists (✓ matches, ✗ does not)."""
    names = list(results)
    lines = ["| claim | hypothesis | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for claim, (what, op, threshold) in CLAIMS.items():
        cells = []
        for name in names:
            m = results[name].get(claim)
            if m is None:
                cells.append("–")
                continue
            want = (expected or {}).get(name, {}).get(claim)
            mark = "" if want in (None, "open") else (" ✓" if want == m.decision else " ✗")
            cells.append(f"{m.hits}/{m.n} {m.decision}{mark}")
        lines.append(f"| `{claim}` {what} | rate {op} {threshold:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
