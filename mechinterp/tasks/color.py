"""The colour-transfer family, generated entirely in code (paper §4.1).

Eight solid colour references × eight objects × five seeds = 320 tasks with the
instruction "draw a {object} in this color", and the 448 I2I→I2I patching pairs
(for each object, every ordered pair of different colours). Task ids, instructions,
seeds and order are identical to the authors' ``solid_color`` task list and
``single9_4step_color`` pair list, so nothing outside the project is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

from PIL import Image

from mechinterp.tasks.records import Pair, Task, task_seed

#: colour name -> sRGB value of the solid reference image. These are the exact pixel
#: values of the authors' ``solid_<colour>.png`` files, in the authors' task order.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (230, 120, 40),
    "yellow": (240, 210, 60),
    "green": (50, 170, 80),
    "blue": (40, 90, 220),
    "purple": (140, 60, 180),
    "pink": (230, 120, 170),
    "brown": (120, 75, 45),
}

#: the objects drawn in each colour, in the authors' task order
OBJECTS: tuple[str, ...] = ("couch", "chair", "car", "ball", "vase", "pillow", "mug", "hat")

#: the instruction template; it never names the colour, which lives only in the reference
INSTRUCTION = "draw a {object} in this color"

#: noise seeds (replicates) per colour × object combination
REPLICATES = 5

SIZE = 1024


@dataclass(frozen=True)
class SolidColor:
    """A solid-colour reference image, rendered at whatever size the edit needs."""

    name: str
    rgb: tuple[int, int, int]

    def render(self, height: int, width: int) -> Image.Image:
        """An RGB image of ``width``×``height`` filled with this colour."""
        return Image.new("RGB", (width, height), self.rgb)

    def __repr__(self) -> str:
        return f"solid_{self.name}{self.rgb}"


def color_task_id(color: str, obj: str, replicate: int) -> str:
    """The authors' task id for one colour task, e.g. ``solid_red_couch_s0``."""
    return f"solid_{color}_{obj}_s{replicate}"


def color_task(color: str, obj: str, replicate: int) -> Task:
    """One colour task; the seed is derived from the task id."""
    if color not in COLORS:
        raise ValueError(f"unknown colour {color!r}; valid colours: {', '.join(COLORS)}")
    if obj not in OBJECTS:
        raise ValueError(f"unknown object {obj!r}; valid objects: {', '.join(OBJECTS)}")
    if not 0 <= replicate < REPLICATES:
        raise ValueError(f"replicate must be in 0..{REPLICATES - 1}, got {replicate}")
    task_id = color_task_id(color, obj, replicate)
    return Task(
        task_id=task_id,
        family="color",
        instruction=INSTRUCTION.format(object=obj),
        reference=SolidColor(color, COLORS[color]),
        seed=task_seed(task_id),
        height=SIZE,
        width=SIZE,
        stratum=f"{color}/{obj}",
        metadata={"color": color, "object": obj, "replicate": replicate, "rgb": list(COLORS[color])},
        named_reference=True,  # the authors name it (real_ref_name solid_<colour>, 1024² like the task)
    )


def color_tasks() -> list[Task]:
    """All 320 colour tasks, in the authors' order (colour, then object, then replicate)."""
    return [color_task(c, o, s) for c in COLORS for o in OBJECTS for s in range(REPLICATES)]


def color_pairs() -> list[Pair]:
    """The 448 colour patching pairs, in the authors' order.

    For each object (alphabetical) and each ordered pair of different colours
    (alphabetical), the k-th pair patches replicate ``k mod 5`` of the source colour into
    replicate ``(k + 1) mod 5`` of the target colour, so source and target never share a
    seed and every replicate is used equally often.
    """
    pairs = []
    for obj in sorted(OBJECTS):
        for k, (src, tgt) in enumerate(permutations(sorted(COLORS), 2)):
            pairs.append(Pair(color_task(src, obj, k % REPLICATES), color_task(tgt, obj, (k + 1) % REPLICATES)))
    return pairs
