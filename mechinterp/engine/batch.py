"""Batched generation: several edits that share a shape in one pipeline call.

Edits batch when they have the same size, number of steps and reference token count (with or
without a reference): the joint sequences then have one length and one layout of ``image`` and
``ref``. Text always has the model's full text length, but token groups inside it (content,
padding) depend on the prompt: knockouts block each row's own positions, while the groups that
captures and patches use must coincide across edits (they act on one set of rows).

Each sample's noise equals its one-by-one noise: the pipeline draws one ``randn`` per sample
from a list of per-sample generators. The pipeline encodes one reference for the whole batch,
so for different references each sample's reference latents are encoded exactly as the
pipeline would, one image at a time, and swapped in by a pre-hook on the transformer.
Batched and one-by-one outputs agree to float tolerance (batched matrix products may round
differently), not bit for bit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from mechinterp.engine.edit import Edit
from mechinterp.engine.interventions import Capture, Captures, Intervention, Patch
from mechinterp.engine.generation import Generation, generation_args, render
from mechinterp.engine.layout import MAX_REFERENCE_AREA, TokenLayout


def stack_captures(captures: Sequence[Captures]) -> Captures:
    """Per-sample captures of several generations as one ``Captures`` of ``[batch, n, hidden]``
    tensors, so a batched ``Patch`` gives every sample its own source's values."""
    keys = set(captures[0])
    if any(set(c) != keys for c in captures):
        raise ValueError("captures to stack must hold the same (site, step) keys")
    return Captures({k: torch.stack([c[k] for c in captures]) for k in keys}, positions=captures[0].positions)


def _groups_used(items: Iterable[Intervention]) -> set[str]:
    """The token groups that must sit at the same positions in every row of a batch: those captures and
    patches read or write (one set of rows for the whole batch). Knockouts block each row's own
    positions (``Intervene(layouts=...)``), so their groups may differ between prompts."""
    return {it.tokens for it in items if isinstance(it, (Capture, Patch))}


def check_batchable(model, edits: Sequence[Edit], items: Sequence[Intervention]) -> list[TokenLayout]:
    """``ValueError`` naming the first difference that keeps ``edits`` out of one batch; else
    the edits' layouts (computed once here, so ``generate_many`` need not recompute them)."""
    if not edits:
        raise ValueError("generate_many needs at least one edit")
    first = edits[0]
    for e in edits[1:]:
        for name in ("height", "width", "steps"):
            if getattr(e, name) != getattr(first, name):
                raise ValueError(f"edits in one batch must share {name}: {getattr(first, name)} vs {getattr(e, name)}")
        if (e.reference is None) != (first.reference is None):
            raise ValueError("edits in one batch must all have a reference or all have none")
    layouts = [model.layout(e) for e in edits]
    if len({lay.n_ref for lay in layouts}) > 1:
        raise ValueError(f"edits in one batch must have references of one token count, got {sorted({l.n_ref for l in layouts})}")
    for group in sorted(_groups_used(items)):
        if group not in layouts[0]:
            continue
        for e, lay in zip(edits[1:], layouts[1:]):
            if not torch.equal(lay[group], layouts[0][group]):
                raise ValueError(f"token group {group!r} differs between {first.text!r} and {e.text!r}; "
                                 "batch edits whose prompts place it alike (e.g. the same instruction)")
    return layouts


def reference_latents(pipe, image) -> torch.Tensor:
    """The packed reference latents ``[1, n_ref, C]`` the pipeline computes for one reference image."""
    w, h = image.size
    if w * h > MAX_REFERENCE_AREA:
        image = pipe.image_processor._resize_to_target_area(image, MAX_REFERENCE_AREA)
        w, h = image.size
    m = pipe.vae_scale_factor * 2
    cond = pipe.image_processor.preprocess(image, height=(h // m) * m, width=(w // m) * m, resize_mode="crop")
    latents, _ = pipe.prepare_image_latents(images=[cond], batch_size=1, generator=None,
                                            device=pipe._execution_device, dtype=pipe.vae.dtype)
    return latents


#: reference latents kept per model (a look draws few distinct references: 8 solid colours)
_REF_MEMO_SIZE = 64


def _memo_reference_latents(model, edit: Edit) -> torch.Tensor:
    """:func:`reference_latents` of the edit's reference, memoised on the model by the reference's
    content digest (the VAE encode is deterministic, so a memoised tensor equals a recomputed one)."""
    memo = model.reference_memo
    vae_weight = next(model.pipe.vae.parameters())  # not ``vae.dtype``: diffusers walks every submodule for it
    key = (edit.reference_digest, str(vae_weight.device), str(vae_weight.dtype))
    if key not in memo:
        if len(memo) >= _REF_MEMO_SIZE:
            memo.pop(next(iter(memo)))
        memo[key] = reference_latents(model.pipe, edit.reference)
    return memo[key]


def _swap_references(transformer, n_image: int, refs: torch.Tensor):
    """A transformer pre-hook replacing the (shared) reference rows with per-sample ones."""

    def hook(module, args, kwargs):
        hs = kwargs["hidden_states"]
        kwargs["hidden_states"] = torch.cat([hs[:, :n_image], refs.to(device=hs.device, dtype=hs.dtype)], dim=1)
        return args, kwargs

    return transformer.register_forward_pre_hook(hook, with_kwargs=True)


@torch.inference_mode()
def generate_many(model, edits: Sequence[Edit], interventions: Iterable[Intervention] = (), capture: Iterable = ()):
    """Generate ``edits`` as one batch under the same interventions; one ``Generation`` per edit.

    Patch values may be ``[batch, n, hidden]`` (see ``stack_captures``) to patch each sample
    with its own values. ``fired`` counts are those of the batched run, shared by every result.
    """
    edits, interventions, captures = generation_args(edits, interventions, capture)
    layouts = check_batchable(model, edits, [*model.wiring, *interventions, *captures])
    first = edits[0]
    kwargs = model.call_kwargs(edits)
    swap = None
    digests = {e.reference_digest for e in edits}
    if first.reference is not None and len(digests) > 1:
        refs = torch.cat([_memo_reference_latents(model, e) for e in edits])
        swap = _swap_references(model.transformer, layouts[0].n_image, refs)
    try:
        with model.intervene(first, *interventions, *captures, layout=layouts[0], layouts=layouts) as ctx:
            out = model.pipe(**kwargs, output_type="np")
    finally:
        if swap is not None:
            swap.remove()
    if ctx.step + 1 != first.steps:
        raise RuntimeError(f"expected {first.steps} transformer calls, saw {ctx.step + 1}")
    arrays = np.asarray(out.images, dtype=np.float32)
    results = []
    for i, e in enumerate(edits):
        caps = Captures({k: (v if len(edits) == 1 else v[i]) for k, v in ctx.captures.items()},
                        positions=ctx.captures.positions)
        image = render(arrays[i])
        results.append(Generation(image, arrays[i], caps, e, layouts[i], interventions, Counter(ctx.fired)))
    return results
