"""The paper's three interventions as experiments over a model and edits.

Each function returns an ``ExperimentResult`` holding every image a judge needs, by role —
the judges' role names (``reference``, ``i2i_baseline``, ``t2i_baseline``, ``lens_output``,
``unconditional_baseline``, ``knockout_output``, ``ref_drop_output``, ``source_reference``, ``target_reference``,
``source_baseline``, ``target_baseline``, ``patched_output``) — and the
``Generation`` behind each, so baselines can be shared and cached by callers (pass
``baseline=`` to reuse a clean I2I generation of the same edit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from mechinterp.engine.edit import Edit
from mechinterp.engine.interventions import Capture, Knockout, Patch, RefDrop
from mechinterp.engine.layout import TEXT_GROUPS
from mechinterp.engine.model import Generation, Model
from mechinterp.engine.sites import SiteLike


@dataclass
class ExperimentResult:
    """Images (by role) and generations of one experiment on one edit (or pair of edits)."""

    experiment: str
    params: dict
    generations: dict[str, Generation] = field(default_factory=dict)
    references: dict[str, Image.Image] = field(default_factory=dict)

    @property
    def images(self) -> dict[str, Image.Image]:
        """Every image by role: references first, then generations."""
        return {**self.references, **{role: g.image for role, g in self.generations.items()}}


def _clean(model: Model, edit: Edit, baseline: Generation | None) -> Generation:
    """The un-intervened I2I generation of ``edit`` (the given baseline when it matches)."""
    if baseline is not None:
        if baseline.edit != edit or baseline.interventions:
            raise ValueError("baseline must be a clean generation (no interventions) of the same edit")
        return baseline
    return model.generate(edit)


def _refs(edit: Edit, role: str = "reference") -> dict[str, Image.Image]:
    return {} if edit.reference is None else {role: edit.reference}


def lens_edit(edit: Edit, steps: int | None = None) -> Edit:
    """The T2I Lens run of ``edit``: empty prompt, no reference, seed + 1, same size."""
    return Edit("", None, seed=edit.seed + 1, height=edit.height, width=edit.width, steps=steps or edit.steps)


def lens_baseline_edit(edit: Edit, steps: int | None = None) -> Edit:
    """The lens judge's Image 2: the edit's own prompt as text-to-image (no reference, seed + 1, lens steps).

    The paper's "T2I baseline using the same prompt as the I2I" (App. E.1), the authors' ``t2i_clean``.
    """
    return Edit(edit.instruction, None, seed=edit.seed + 1, height=edit.height, width=edit.width,
                steps=steps or edit.steps, prompt=edit.prompt)


def t2i_lens(model: Model, edit: Edit, site: SiteLike, *, same_layer: bool = False, lens_steps: int | None = None,
             tokens: str = "text", unconditional: Generation | None = None) -> ExperimentResult:
    """T2I Lens: read what the text stream carries after ``site`` in the I2I edit.

    Captures the text stream after ``site`` at step 0 of the I2I run, then runs an
    empty-prompt, reference-free generation (seed + 1) whose ``embed`` output — or, with
    ``same_layer=True``, the output of ``site`` itself — is overwritten at every step.
    ``tokens`` restricts the overwrite to a text group of the I2I edit (``text.padding``,
    ``text.content``, ...); the other positions keep the lens run's own activations.

    Roles: ``t2i_baseline`` is the judge's Image 2, the T2I of the edit's own prompt
    (:func:`lens_baseline_edit`); ``unconditional_baseline`` is the un-patched empty-prompt
    run the lens writes into (pass it as ``unconditional`` to reuse one).
    """
    if tokens not in TEXT_GROUPS:
        raise ValueError(f"t2i_lens reads text tokens; got {tokens!r}, expected one of {', '.join(TEXT_GROUPS)}")
    site = model.table.name(site)
    i2i = model.generate(edit, capture=[Capture(site, "text", steps=0)])
    text = i2i.captures[(site, 0)]
    lens = lens_edit(edit, lens_steps)
    target = site if same_layer else "embed"
    if unconditional is not None and (unconditional.edit != lens or unconditional.interventions):
        raise ValueError("unconditional must be a clean generation (no interventions) of lens_edit(edit, lens_steps)")
    if tokens == "text":
        unconditional = unconditional or model.generate(lens)
        patch = Patch(target, text, "text")
    else:
        unconditional = model.generate(lens, capture=[Capture(target, "text")])
        rows = i2i.layout[tokens]
        values = {}
        for key, own in unconditional.captures.items():
            mixed = own.clone()
            mixed[rows] = text[rows].to(mixed.dtype)
            values[key] = mixed
        patch = Patch(target, values, "text")
    out = model.generate(lens, [patch])
    params = {"site": site, "same_layer": same_layer, "lens_steps": lens.steps, "tokens": tokens}
    gens = {"i2i_baseline": i2i, "t2i_baseline": model.generate(lens_baseline_edit(edit, lens.steps)),
            "unconditional_baseline": unconditional, "lens_output": out}
    return ExperimentResult("t2i_lens", params, gens, _refs(edit))


def knockout(model: Model, edit: Edit, source: str, dest: str, *, sites=None, baseline: Generation | None = None) -> ExperimentResult:
    """Attention knockout ``source→dest`` (queries in ``dest`` may not see keys in ``source``)."""
    ko = Knockout(source, dest, sites)
    out = model.generate(edit, [ko])
    params = {"source": source, "dest": dest, "sites": "all" if sites is None else list(ko.resolved(model.table).sites)}
    return ExperimentResult("knockout", params, {"i2i_baseline": _clean(model, edit, baseline), "knockout_output": out}, _refs(edit))


def ref_drop(model: Model, edit: Edit, cutoff: SiteLike, *, baseline: Generation | None = None) -> ExperimentResult:
    """Reference drop at ``cutoff`` (the first severed block): ref→image blocked before it, the
    reference cut off from it on (see :class:`~mechinterp.engine.interventions.RefDrop`)."""
    cutoff = model.table.name(cutoff)
    out = model.generate(edit, [RefDrop(cutoff)])
    return ExperimentResult("refdrop", {"cutoff": cutoff}, {"i2i_baseline": _clean(model, edit, baseline), "ref_drop_output": out}, _refs(edit))


def ref_drop_sweep(model: Model, edit: Edit, cutoffs=None, *, baseline: Generation | None = None) -> dict[str, ExperimentResult]:
    """Reference drop at every block (or at ``cutoffs``), sharing one clean baseline."""
    baseline = _clean(model, edit, baseline)
    sites = model.table.blocks if cutoffs is None else [model.table.resolve(c) for c in cutoffs]
    return {s.name: ref_drop(model, edit, s.name, baseline=baseline) for s in sites}


def i2i_patch(model: Model, source: Edit, target: Edit, site: SiteLike, *, tokens: str = "text",
              source_baseline: Generation | None = None, target_baseline: Generation | None = None) -> ExperimentResult:
    """I2I→I2I patching: the source's text stream after ``site`` overwrites the target's, step by step.

    Source and target share the instruction (so their text tokens line up) and differ in
    reference and seed. ``tokens`` is ``text``, ``text.padding``, ``text.content`` (or a finer text group).
    """
    if tokens not in TEXT_GROUPS:
        raise ValueError(f"i2i_patch patches text tokens; got {tokens!r}, expected one of {', '.join(TEXT_GROUPS)}")
    site = model.table.name(site)
    if not model.layout(source).same_text(model.layout(target)):
        raise ValueError(f"source and target must have the same text tokens to patch between them: "
                         f"{source.text!r} vs {target.text!r}")
    if source.steps != target.steps:
        raise ValueError(f"source and target must run the same number of steps, got {source.steps} and {target.steps}")
    src = model.generate(source, capture=[Capture(site, "text")])
    patched = model.generate(target, [Patch(site, src.captures, tokens)])
    gens = {"source_baseline": src, "target_baseline": _clean(model, target, target_baseline), "patched_output": patched}
    refs = {**_refs(source, "source_reference"), **_refs(target, "target_reference")}
    return ExperimentResult("patching", {"site": site, "tokens": tokens}, gens, refs)
