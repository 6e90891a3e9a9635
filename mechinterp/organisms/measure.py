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
