"""The task and pair records every experiment draws from, and their conversion to ``Edit``.

A ``Task`` is one row of the paper's task lists (§4.1): an instruction, a reference
(a file in the user's data directory, or an image generated in code) and a noise seed.
A ``Pair`` is one I2I→I2I patching pair: two tasks with the same instruction and
different references, whose text stream is copied from ``source`` into ``target``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from PIL import Image

from mechinterp.engine.edit import Edit, image_size, load_image
from mechinterp.tasks.references import prepare, prepared_size


class TaskDataError(ValueError):
    """A task list, pair list or data directory is malformed, incomplete or inconsistent.

    One exception type for every bad input of this package, so callers (the CLI, the
    pytest plugin) can report it as a data problem rather than a crash.
    """


def task_seed(task_id: str) -> int:
    """The noise seed of a task: CRC-32 of its UTF-8 task id.

    This is the authors' convention (their tasks carry ``noise_seed = crc32(task_id)``),
    so a task id alone fixes its noise on every machine and Python version.
    """
    if not isinstance(task_id, str) or not task_id:
        raise TaskDataError(f"task id must be a non-empty string, got {task_id!r}")
    return zlib.crc32(task_id.encode("utf-8"))


@runtime_checkable
class ReferenceGenerator(Protocol):
    """A reference image made in code rather than read from disk (e.g. a solid colour)."""

    def render(self, height: int, width: int) -> Image.Image:
        """Return the reference as an RGB image of the requested size."""


@dataclass(frozen=True)
class Task:
    """One editing task of a family.

    ``reference`` is an absolute path to an image file or a ``ReferenceGenerator``;
    ``seed`` is the noise seed; ``height``/``width`` the generation size the paper used;
    ``stratum`` names the group sampling keeps in proportion (colour/object,
    subject/prompt, person, scene category); ``metadata`` carries the authors' extra
    fields verbatim. ``named_reference``: the authors name the reference (``real_ref_name``)
    rather than give a source image, which decides how it is prepared
    (``mechinterp.tasks.references``).
    """

    task_id: str
    family: str
    instruction: str
    reference: Path | ReferenceGenerator
    seed: int
    height: int = 1024
    width: int = 1024
    stratum: str = ""
    metadata: dict = field(default_factory=dict, hash=False)
    named_reference: bool = False

    def __post_init__(self) -> None:
        if not self.task_id or not isinstance(self.task_id, str):
            raise TaskDataError(f"task id must be a non-empty string, got {self.task_id!r}")
        if not isinstance(self.instruction, str) or not self.instruction.strip():
            raise TaskDataError(f"task {self.task_id!r}: instruction must be a non-empty string, got {self.instruction!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**63:
            raise TaskDataError(f"task {self.task_id!r}: seed must be a non-negative integer, got {self.seed!r}")
        for name in ("height", "width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise TaskDataError(f"task {self.task_id!r}: {name} must be a positive integer, got {value!r}")
        if not isinstance(self.reference, (Path, ReferenceGenerator)):
            raise TaskDataError(
                f"task {self.task_id!r}: reference must be a Path or a ReferenceGenerator, "
                f"got {type(self.reference).__name__}"
            )

    @property
    def reference_name(self) -> str:
        """A short human-readable name of the reference (file name or generator repr)."""
        return self.reference.name if isinstance(self.reference, Path) else repr(self.reference)

    def reference_size(self, native: tuple[int, int] | None = None, *, native_source: bool = False) -> tuple[int, int]:
        """The (width, height) this task's reference reaches the pipeline at: ``reference_image``'s
        size without its pixels (the authors' rule, ``mechinterp.tasks.references``).

        ``native`` is the reference file's size (default: read from the file's header; a
        generated reference's is the task's); ``native_source``: the experiment passes source
        images at native size (I2I→I2I patching).
        """
        if native is None:
            native = image_size(self.reference) if isinstance(self.reference, Path) else (self.width, self.height)
        return prepared_size(native, (self.width, self.height), named=self.named_reference, native_source=native_source)

    def reference_image(self, height: int | None = None, width: int | None = None, *,
                        native_source: bool = False) -> Image.Image:
        """The reference as an RGB image, prepared as the authors prepare it for the pipeline.

        ``native_source``: the experiment passes source images at native size (I2I→I2I
        patching). With ``height``/``width`` other than the task's (a small model running a
        paper task) the reference is resized to that size instead.
        """
        h, w = height or self.height, width or self.width
        image = load_image(self.reference) if isinstance(self.reference, Path) else self.reference.render(h, w)
        if (w, h) != (self.width, self.height):  # no protocol at another size: fit the reference to it
            return image if image.size == (w, h) else image.resize((w, h))
        return prepare(image, (w, h), named=self.named_reference, native_source=native_source)

    def to_edit(self, height: int | None = None, width: int | None = None, steps: int | None = None, *,
                native_source: bool = False) -> Edit:
        """The engine ``Edit`` for this task, optionally at another size or step count.

        ``native_source``: source images at native size (I2I→I2I patching); see ``reference_image``.
        """
        h, w = height or self.height, width or self.width
        return Edit(
            instruction=self.instruction,
            reference=self.reference_image(h, w, native_source=native_source),
            seed=self.seed,
            height=h,
            width=w,
            steps=4 if steps is None else steps,
        )


@dataclass(frozen=True)
class Pair:
    """One I2I→I2I patching pair: the source's text stream is patched into the target.

    Both tasks share the instruction and differ in reference (and seed); the constructor
    rejects pairs that break this, because patching such a pair would measure something
    else than the reference's contribution.
    """

    source: Task
    target: Task

    def __post_init__(self) -> None:
        if self.source.instruction != self.target.instruction:
            raise TaskDataError(
                f"pair {self.source.task_id!r} -> {self.target.task_id!r}: instructions differ "
                f"({self.source.instruction!r} vs {self.target.instruction!r}); a patching pair must share it"
            )
        if self.source.reference == self.target.reference:
            raise TaskDataError(
                f"pair {self.source.task_id!r} -> {self.target.task_id!r}: both use reference "
                f"{self.source.reference_name!r}; a patching pair must differ in reference"
            )

    @property
    def pair_id(self) -> str:
        """``source_id->target_id``, the key results are stored under."""
        return f"{self.source.task_id}->{self.target.task_id}"

    @property
    def stratum(self) -> str:
        """The sampling stratum of a pair: its source and target strata."""
        return f"{self.source.stratum} -> {self.target.stratum}"

    def to_edits(self, height: int | None = None, width: int | None = None, steps: int | None = None) -> tuple[Edit, Edit]:
        """The (source, target) engine edits, with the same optional overrides as ``Task.to_edit``.

        Source images go in at native size, as the authors' I2I→I2I runner passes them.
        """
        return tuple(t.to_edit(height, width, steps, native_source=True) for t in (self.source, self.target))
