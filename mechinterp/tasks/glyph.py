"""The glyph identity family: a synthetic stand-in for the paper's human identity, generated in code.

A *glyph* is a 4×4 binary pattern with exactly eight cells on (12,870 distinct instances; two
random glyphs agree on 8 of 16 cells on average). The reference shows it as a square of
``CELL``-pixel cells (on = ``ON_RGB``, off = ``OFF_RGB``) centred on the neutral background; the
instruction asks for "the same glyph", so the output is right only if it reproduces that exact
instance, as a customisation output is right only if it shows that exact person. Nothing about
the glyph is in the instruction: the identity lives in the reference alone.

``glyph_tasks()`` is the family (``GLYPHS`` glyphs × ``REPLICATES`` seeds); ``glyph_pairs()`` its
I2I→I2I patching pairs (source glyph → target glyph, same instruction, glyphs at least
``MIN_PAIR_DISTANCE`` cells apart so a transfer is visible). A model says in its
``mechinterp.json`` that this family stands for ``human`` on it (``tasks = {"human": "glyph"}``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from mechinterp.tasks.records import Pair, Task, task_seed

#: glyph grid side (cells) and the number of cells on in every glyph
SIDE, ON_CELLS = 4, 8
#: colours of the glyph's on / off cells and of the background around the square
ON_RGB, OFF_RGB = (30, 40, 110), (240, 210, 60)
BACKGROUND = (215, 215, 215)
#: the square's side as a fraction of the image side (a 64-px image: 8-px cells, 32-px square)
SQUARE_FRACTION = 0.5
INSTRUCTION = "draw this square"  # the reference's exact glyph square (26 tokens of the organisms' 32)
GLYPHS, REPLICATES = 64, 5
MIN_PAIR_DISTANCE = 6
SIZE = 64


def random_glyph(rng: random.Random) -> tuple[int, ...]:
    """A glyph drawn from ``rng``: 16 cells (row-major), exactly ``ON_CELLS`` of them 1."""
    on = set(rng.sample(range(SIDE * SIDE), ON_CELLS))
    return tuple(int(i in on) for i in range(SIDE * SIDE))


@lru_cache(maxsize=4)
def glyph_set(n: int = GLYPHS, seed: int = 17) -> tuple[tuple[int, ...], ...]:
    """``n`` distinct glyphs, seeded (the family's instances, in order)."""
    rng, out = random.Random(seed), []
    while len(out) < n:
        g = random_glyph(rng)
        if g not in out:
            out.append(g)
    return tuple(out)


def glyph_name(glyph: tuple[int, ...]) -> str:
    """A glyph as 4 hex digits (row-major bits), e.g. ``a5c3``: its id in task ids."""
    return f"{int(''.join(map(str, glyph)), 2):04x}"


def square_box(height: int, width: int) -> tuple[int, int, int]:
    """``(top, left, cell)`` of the glyph square in an image of that size (cells whole pixels)."""
    cell = max(1, round(min(height, width) * SQUARE_FRACTION / SIDE))
    side = cell * SIDE
    return (height - side) // 2, (width - side) // 2, cell


def render_glyph(glyph: tuple[int, ...] | None, height: int = SIZE, width: int = SIZE) -> Image.Image:
    """The glyph square on the background (``None``: the empty square, every cell off)."""
    if glyph is not None and len(glyph) != SIDE * SIDE:
        raise ValueError(f"a glyph has {SIDE * SIDE} cells, got {len(glyph)}")
    top, left, cell = square_box(height, width)
    arr = np.empty((height, width, 3), np.uint8)
    arr[:] = BACKGROUND
    cells = glyph or (0,) * (SIDE * SIDE)
    for i, bit in enumerate(cells):
        r, c = divmod(i, SIDE)
        arr[top + r * cell: top + (r + 1) * cell, left + c * cell: left + (c + 1) * cell] = ON_RGB if bit else OFF_RGB
    return Image.fromarray(arr)


@dataclass(frozen=True)
class Glyph:
    """A glyph reference image, rendered at whatever size the edit needs."""

    cells: tuple[int, ...]

    def render(self, height: int, width: int) -> Image.Image:
        """The glyph square of this glyph at ``width``×``height``."""
        return render_glyph(self.cells, height, width)

    def __repr__(self) -> str:
        return f"glyph_{glyph_name(self.cells)}"


def glyph_task(index: int, replicate: int) -> Task:
    """Task ``(index, replicate)`` of the family: glyph ``index`` of :func:`glyph_set`, one seed."""
    glyphs = glyph_set()
    if not 0 <= index < len(glyphs):
        raise ValueError(f"glyph index must be in 0..{len(glyphs) - 1}, got {index}")
    if not 0 <= replicate < REPLICATES:
        raise ValueError(f"replicate must be in 0..{REPLICATES - 1}, got {replicate}")
    glyph = glyphs[index]
    task_id = f"glyph_{index:02d}_{glyph_name(glyph)}_s{replicate}"
    return Task(task_id=task_id, family="glyph", instruction=INSTRUCTION, reference=Glyph(glyph),
                seed=task_seed(task_id), height=SIZE, width=SIZE, stratum=f"glyph{index:02d}",
                metadata={"glyph": list(glyph), "index": index, "replicate": replicate})


def glyph_tasks() -> list[Task]:
    """Every task of the family: each glyph × each replicate."""
    return [glyph_task(i, r) for i in range(GLYPHS) for r in range(REPLICATES)]


def distance(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """Cells in which two glyphs differ (Hamming distance)."""
    return sum(x != y for x, y in zip(a, b, strict=True))


def glyph_pairs() -> list[Pair]:
    """The patching pairs: glyph ``i`` → glyph ``(i + k) mod GLYPHS`` for the first ``k`` that is at least
    ``MIN_PAIR_DISTANCE`` cells away, for every glyph and replicate (source and target seeds differ)."""
    glyphs, pairs = glyph_set(), []
    for i in range(GLYPHS):
        j = next((i + k) % GLYPHS for k in range(1, GLYPHS) if distance(glyphs[i], glyphs[(i + k) % GLYPHS]) >= MIN_PAIR_DISTANCE)
        for r in range(REPLICATES):
            pairs.append(Pair(glyph_task(i, r), glyph_task(j, (r + 1) % REPLICATES)))
    return pairs
