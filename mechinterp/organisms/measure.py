"""Measuring organisms: the I2I baseline's accuracy (reference colour on the right shape).

The colour *claims* on an organism are decided by the claims suite itself (engine, ColorJudge,
sequential test): ``mechinterp.suite.organism_table``.
"""

from __future__ import annotations

from mechinterp.engine.edit import Edit
from mechinterp.engine.model import Model
from mechinterp.organisms.data import HELD_OUT, classify_color, classify_shape
from mechinterp.tasks.color import COLORS, OBJECTS, REPLICATES, color_task

#: the bar every shipped organism must pass: reference colour on the right shape
BASELINE_BAR = 0.90


def color_edit(model: Model, color: str, obj: str, replicate: int) -> Edit:
    """The colour task ``(color, obj, replicate)`` at the model's size: same instruction and seed as the suite's."""
    size = model.meta.size
    if size is None:
        raise ValueError(f"model {model.model_id!r} names no default_size in its mechinterp.json; "
                         "baseline accuracy runs at an organism's own size")
    return color_task(color, obj, replicate).to_edit(size, size, model.meta.steps)


def eval_tasks(n: int | None = None) -> list[tuple[str, str, int]]:
    """A fixed list of ``(colour, object, replicate)`` tasks, spread over colours and objects.

    ``n=None`` gives all 320.
    """
    combos = [(c, o) for c in COLORS for o in OBJECTS]
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


def glyph_baseline(model: Model, n: int | None = 64) -> dict:
    """I2I baseline of an identity organism: fraction of the first ``n`` glyph tasks (spread over the
    glyphs, none of them trained on) whose output the glyph judge reads as exactly the reference's glyph."""
    from mechinterp.judges.glyph import read_glyph
    from mechinterp.tasks.glyph import glyph_tasks

    tasks = glyph_tasks()
    tasks = tasks if n is None else tasks[:: max(1, len(tasks) // n)][:n]
    size = model.meta.size
    rows = []
    for t in tasks:
        cells = read_glyph(model.generate(t.to_edit(size, size, model.meta.steps)).image).cells
        rows.append({"task": t.task_id, "glyph": t.metadata["glyph"], "read": None if cells is None else list(cells)})
    ok = [row["read"] == row["glyph"] for row in rows]
    acc = sum(ok) / max(len(ok), 1)
    return {"n": len(ok), "correct": int(sum(ok)), "accuracy": acc, "held_out_n": len(ok),
            "held_out_accuracy": acc if ok else None, "rows": rows}


def organism_baseline(model: Model, n: int | None = 64) -> dict:
    """The I2I baseline of an organism on its own task: :func:`glyph_baseline` for the identity organisms
    (``tasks.human = glyph``), :func:`baseline_accuracy` on ``n`` colour tasks otherwise."""
    if dict(model.meta.tasks).get("human") == "glyph":
        return glyph_baseline(model, n)
    return baseline_accuracy(model, eval_tasks(n))
