"""The project's vocabulary, each term defined once: claim families, task families and the experiment table.

Everything that names an experiment reads this table: the claim loader (valid experiment
names, the marker a claim must carry, which judge questions judge it), the pytest plugin (its
markers), the runner (``kind.run`` is its dispatch), the cost replay (``kind.cost``) and the
judge question bank (each question prefix's image roles). The spellings stay the paper's and
the experiment names, markers, claim-id prefixes and question prefixes of an experiment are one
word (``patching``, ``refdrop``; the T2I lens keeps the paper's ``t2i_lens`` beside its marker
``lens``). The earlier spellings ``i2i_patch`` / ``ref_drop`` and question prefix ``patch`` are
read as old names (:data:`OLD_NAMES`), so a user's claims file keeps loading.

Adding an experiment kind is one :func:`register` call with its function (``docs/custom-claims.md``,
"Adding an experiment"): the runner calls ``run(ctx, item, experiment)`` with a
:class:`RunContext` that maps the claim's sites to the model's and makes the task's edits.

This module imports neither torch nor the engine: loading a claims file stays light. The paper's
run functions import :mod:`mechinterp.experiments` when they run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, Protocol


@dataclass(frozen=True)
class Family:
    """A claim family: its pytest marker (= its name), the suffix of its judge questions, its help text."""

    name: str
    question: str  # the question-id suffix: ``lens.identity`` judges the ``human`` family
    about: str


#: claim family name -> :class:`Family` (the question bank's "identity" is the claims' "human")
FAMILIES: Mapping[str, Family] = MappingProxyType({f.name: f for f in (
    Family("color", "color", "colour-transfer claims"),
    Family("style", "style", "style-transfer claims"),
    Family("human", "identity", "human-identity claims"),
    Family("scene", "scene", "object addition/removal (scene) claims"),
)})


@dataclass(frozen=True)
class FamilyInfo:
    """What a task family is, how big the paper's version is, and what it needs."""

    name: str
    size: int
    description: str
    strata: str
    buckets: tuple[str, ...] = ()
    needs: str = "in-project"


@dataclass(frozen=True)
class PairFamilyInfo:
    """An I2I→I2I pair family: which task families its sources and targets come from."""

    name: str
    size: int
    description: str
    source_family: str
    target_family: str
    pairs_file: str
    needs: str = "in-project"


#: the environment variable naming the data directory (the authors' task lists and images; docs/data-dir.md)
DATA_DIR_ENV = "MECHINTERP_DATA_DIR"
_STYLE_NEEDS = "data dir: tasks/{bucket}.jsonl + data/style_references/{sub}/ (18 images, manifest)"
#: task family name -> :class:`FamilyInfo` (``mechinterp.tasks.FAMILIES``; claims name these in ``tasks``)
TASK_FAMILIES: dict[str, FamilyInfo] = {
    info.name: info
    for info in (
        FamilyInfo("color", 320, "8 solid colours x 8 objects x 5 seeds", "colour x object"),
        FamilyInfo("style", 450, "18 illustrated subjects x 5 instructions x 5 seeds", "subject x prompt",
                   ("style",), _STYLE_NEEDS.format(bucket="style", sub="fictional")),
        FamilyInfo("style_real", 450, "the real-photo twins of the style tasks", "subject x prompt",
                   ("manual",), _STYLE_NEEDS.format(bucket="manual", sub="real")),
        # the paper's human lens and knockout cells are the 90 individual tasks (n = 90); the
        # 50 shared-instruction tasks are the people that the I2I->I2I pairs swap
        FamilyInfo("human", 90, "10 DreamBench++ people x 9 individual instructions", "person",
                   ("dreambench_humans",),
                   "data dir: tasks/dreambench_humans.jsonl + data/tasks/customize/images/ (10 images, manifest)"),
        FamilyInfo("human_shared", 50, "10 DreamBench++ people x 5 shared instructions (the patching pairs' tasks)",
                   "person", ("dreambench_humans_shared",),
                   "data dir: tasks/dreambench_humans_shared.jsonl + data/tasks/customize/images/ (10 images, manifest)"),
        # the identity organisms' stand-in for ``human`` (their mechinterp.json: tasks = {"human": "glyph"})
        FamilyInfo("glyph", 320, "64 random 4x4 glyphs x 5 seeds: reproduce the reference's exact glyph "
                   "(the identity organisms' human family)", "glyph"),
        FamilyInfo("add", 789, "SUN397 object addition, 2 images per category", "scene category",
                   ("add",), "data dir: tasks/add.jsonl + data/tasks/add/images/ (SUN397)"),
        FamilyInfo("remove", 726, "SUN397 object removal, 2 images per category", "scene category",
                   ("remove",), "data dir: tasks/remove.jsonl + data/tasks/remove/images/ (SUN397)"),
    )
}

#: pair family name -> :class:`PairFamilyInfo` (``mechinterp.tasks.PAIR_FAMILIES``)
PAIR_FAMILIES: dict[str, PairFamilyInfo] = {
    info.name: info
    for info in (
        PairFamilyInfo("color", 448, "8x7 ordered colour pairs x 8 objects, different seeds", "color", "color",
                       "single9_4step_color"),
        PairFamilyInfo("style", 450, "illustration source -> real-photo target, same subject and prompt",
                       "style", "style_real", "mm7_4step_style_to_real", "data dir: pairs/mm7_4step_style_to_real.txt + style, style_real"),
        PairFamilyInfo("human", 450, "person i -> person j on a shared instruction (10x9x5)", "human_shared",
                       "human_shared", "mm7_4step_dreambench_humans",
                       "data dir: pairs/mm7_4step_dreambench_humans.txt + human_shared"),
        PairFamilyInfo("glyph", 320, "glyph i -> a glyph at least 6 cells away, same instruction, different seeds",
                       "glyph", "glyph", ""),
    )
}


class RunContext(Protocol):
    """What the runner hands an experiment kind's ``run``: the model, edits and site mapping of one claim."""

    model: Any

    def edit(self, item) -> Any:
        """The task's I2I edit (lens, knockout and reference-drop runs)."""

    def edits(self, item) -> tuple[Any, Any]:
        """A patching pair's (source, target) edits."""

    def site(self, site: str) -> str:
        """The model's site for a claim's (paper-numbered) site."""

    def cutoff(self, site: str) -> str:
        """The model's site for a claim's reference-drop cutoff (the first severed block)."""


@dataclass(frozen=True)
class ExperimentKind:
    """One row of the experiment table.

    ``name`` is the claims' ``experiment.name`` and the result's ``experiment``; ``marker`` the
    pytest marker (and claim-id prefix); ``questions`` the question-bank prefixes that judge it;
    ``roles`` the images its judge bundle shows, in the questions' order; ``run(ctx, item,
    experiment)`` runs it on one task (a pair when ``pairs``); ``token_variants``: its questions
    name the text tokens it writes, so a claim's question must match its ``tokens``; ``cost``
    maps the experiment to the kind of run the cost replay prices (``None``: no released replay).
    """

    name: str
    marker: str
    about: str
    questions: tuple[str, ...]
    roles: tuple[str, ...]
    run: Callable[[RunContext, Any, Any], Any]
    pairs: bool = False
    token_variants: bool = False
    cost: Callable[[Any], str] | None = None


def _t2i_lens(ctx: RunContext, item, e):
    from mechinterp import experiments as ex

    same_layer = bool(e.get("same_layer"))
    return ex.t2i_lens(ctx.model, ctx.edit(item), ctx.site(e.get("site")), same_layer=same_layer,
                       lens_steps=e.get("steps") if same_layer else None, tokens=e.get("tokens", "text"))


def _knockout(ctx: RunContext, item, e):
    from mechinterp import experiments as ex

    blocks = e.get("blocks", "all")
    sites = None if blocks in (None, "all") else [ctx.site(s) for s in blocks]
    return ex.knockout(ctx.model, ctx.edit(item), e.get("source"), e.get("dest"), sites=sites)


def _refdrop(ctx: RunContext, item, e):
    from mechinterp import experiments as ex

    return ex.ref_drop(ctx.model, ctx.edit(item), ctx.cutoff(e.get("cutoff")))


def _patching(ctx: RunContext, item, e):
    from mechinterp import experiments as ex

    source, target = ctx.edits(item)  # native source images
    return ex.i2i_patch(ctx.model, source, target, ctx.site(e.get("site")), tokens=e.get("tokens", "text"))


_TABLE: dict[str, ExperimentKind] = {}
#: experiment name -> :class:`ExperimentKind`, read-only (a :func:`register` call adds a row)
EXPERIMENTS: Mapping[str, ExperimentKind] = MappingProxyType(_TABLE)


def register(kind: ExperimentKind) -> ExperimentKind:
    """Add an experiment kind to the table (its name, marker and question prefixes must be new)."""
    if kind.name in _TABLE:
        raise ValueError(f"experiment {kind.name!r} is already registered")
    taken = {m for m in FAMILIES} | {k.marker for k in _TABLE.values()}
    if kind.marker in taken:
        raise ValueError(f"experiment {kind.name!r}: marker {kind.marker!r} is already used")
    if not kind.questions or not 2 <= len(kind.roles) <= 4:
        raise ValueError(f"experiment {kind.name!r}: expected question prefixes and 2-4 judge roles, "
                         f"got questions={kind.questions} roles={kind.roles}")
    _TABLE[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove an experiment kind (a test's example kind, when it is done)."""
    _TABLE.pop(name)


def markers() -> dict[str, str]:
    """Every claim marker with its help text: the families', then the experiments'."""
    return {**{f.name: f.about for f in FAMILIES.values()}, **{k.marker: k.about for k in _TABLE.values()}}


def kind_of_question(prefix: str) -> ExperimentKind | None:
    """The experiment kind a question prefix (``ko_text``, ``patch``...) judges, or ``None``."""
    return next((k for k in _TABLE.values() if prefix in k.questions), None)


#: earlier spellings a claims file may still use -> the table's name (experiments and question prefixes)
OLD_NAMES: Mapping[str, str] = MappingProxyType({
    "i2i_patch": "patching", "ref_drop": "refdrop",
    "patch": "patching", "patch_padding": "patching_padding", "patch_content": "patching_content",
})


def canonical_experiment(name: Any) -> Any:
    """The table's name for an experiment name a claims file gives (an old spelling mapped, else as given)."""
    return OLD_NAMES.get(name, name) if isinstance(name, str) else name


def canonical_question(qid: Any) -> Any:
    """The question id with an old prefix spelling mapped (``patch.color`` -> ``patching.color``), else as given."""
    if not isinstance(qid, str) or "." not in qid:
        return qid
    prefix, _, rest = qid.partition(".")
    return f"{OLD_NAMES.get(prefix, prefix)}.{rest}"


def _lens_cost(e) -> str:
    return "lens1" if int(e.get("steps", 4)) == 1 else "lens"


for _kind in (
    ExperimentKind("t2i_lens", "lens", "T2I Lens claims", ("lens",), ("reference", "t2i_baseline", "lens_output"),
                   _t2i_lens, token_variants=True, cost=_lens_cost),
    ExperimentKind("knockout", "knockout", "attention-knockout claims",
                   ("ko_text", "ko_text_padding", "ko_text_content", "ko_image"),
                   ("reference", "i2i_baseline", "knockout_output"), _knockout,
                   cost=lambda e: f"ko:{e.get('source', 'ref')}->{e.get('dest')}"),
    ExperimentKind("refdrop", "refdrop", "reference-drop claims", ("refdrop",),
                   ("reference", "i2i_baseline", "ref_drop_output"), _refdrop),
    ExperimentKind("patching", "patching", "I2I->I2I activation-patching claims", ("patching",),
                   ("source_reference", "target_reference", "target_baseline", "patched_output"), _patching,
                   pairs=True, token_variants=True, cost=lambda e: "patch"),
):
    register(_kind)

__all__ = ["DATA_DIR_ENV", "EXPERIMENTS", "FAMILIES", "PAIR_FAMILIES", "TASK_FAMILIES", "ExperimentKind", "Family", "FamilyInfo",
           "OLD_NAMES", "PairFamilyInfo", "RunContext", "canonical_experiment", "canonical_question",
           "kind_of_question", "markers",
           "register", "unregister"]
