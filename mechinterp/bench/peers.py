"""The engine's peers in the bench: the same capture, patch and knockout done the ways others do them.

- **plain forward hooks** (``register_forward_hook``) for capture and patch, written the way a
  researcher writes them and the authors' released code does: a hook copies the text rows of a
  block's output to the host, or clones the output and overwrites its text rows;
- **nnsight** (optional, ``pip install -e ".[bench]"``): ``nnsight.NNsight`` around the transformer
  for the transformer bench, and nnsight's diffusers support (``DiffusionModel``) around a whole
  pipeline for the pipeline bench, capturing and patching with ``tracer.iter`` over the steps;
- **the authors' knockouts**: subclasses of diffusers' own FLUX.2 attention processors that hand
  one additive ``-inf`` mask to the stock processor on every block (the design of the authors'
  ``knockout_processors.py``, written here from its description, not copied).

Each peer does the job the engine does — the tests check that captures are equal, patched and
knocked-out images identical — so the bench's ratios compare like with like. nnsight installs a
controller as the ``forward`` of every module it wraps and leaves it there; it therefore wraps a
structural *twin* (``twin``: the same parameter tensors, separate module objects), so the other
settings of a bench still run on untouched modules.
"""

from __future__ import annotations

import copy
import inspect
import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from diffusers.models.transformers.transformer_flux2 import Flux2AttnProcessor, Flux2ParallelSelfAttnProcessor
from torch import nn

from mechinterp.engine.layout import TokenLayout


def nnsight_missing() -> str | None:
    """Why the nnsight peer cannot run here (``None`` when it can)."""
    try:
        import nnsight  # noqa: F401
        from nnsight.modeling.diffusion import DiffusionModel  # noqa: F401
    except ImportError as err:
        return f"nnsight is not installed ({err}); pip install -e \".[bench]\""
    return None


def module_path(root: nn.Module, module: nn.Module) -> str:
    """The dotted name of ``module`` inside ``root`` (``single_transformer_blocks.3``)."""
    for name, m in root.named_modules():
        if m is module:
            return name
    raise ValueError(f"{type(module).__name__} is not a submodule of {type(root).__name__}")


def twin(module: nn.Module) -> nn.Module:
    """A copy of ``module``'s module objects that shares every parameter and buffer with it."""
    memo = {id(t): t for t in itertools.chain(module.parameters(), module.buffers())}
    return copy.deepcopy(module, memo)


def twin_pipeline(pipe):
    """A pipeline of the same class and config whose modules are ``twin``s of ``pipe``'s (weights shared)."""
    parts = {name: twin(c) if isinstance(c, nn.Module) else copy.deepcopy(c) for name, c in pipe.components.items()}
    init = inspect.signature(type(pipe).__init__).parameters
    options = {k: pipe.config[k] for k in init if k not in parts and k in pipe.config}
    out = type(pipe)(**parts, **options)
    out.set_progress_bar_config(disable=True)
    return out


# -- plain forward hooks ----------------------------------------------------------------------


def _text(output, n_text: int) -> torch.Tensor:
    """The text rows of a site output: a double block's text stream, else the first ``n_text`` rows."""
    return output[0] if isinstance(output, tuple) else output[:, :n_text]


@contextmanager
def hooks_capture(module: nn.Module, n_text: int) -> Iterator[list[torch.Tensor]]:
    """Forward hooks that copy the text rows of ``module``'s output to the host at every call.

    Yields the list the copies are appended to (one ``[B, n_text, D]`` tensor per step).
    """
    store: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda m, a, out: store.append(_text(out, n_text).detach().to("cpu", copy=True)))
    try:
        yield store
    finally:
        handle.remove()


@contextmanager
def hooks_patch(transformer: nn.Module, module: nn.Module, n_text: int, values: torch.Tensor | Sequence[torch.Tensor]):
    """Forward hooks that overwrite the text rows of ``module``'s output with ``values``.

    ``values`` is one ``[n_text, D]`` tensor for every step or one per step; a pre-hook on the
    transformer counts the steps.
    """
    step = [-1]
    per_step = None if isinstance(values, torch.Tensor) else list(values)

    def tick(m, a):
        step[0] += 1

    def patch(m, a, out):
        v = values if per_step is None else per_step[step[0]]
        if isinstance(out, tuple):  # double block: (text, image)
            text = out[0].clone()
            text[:] = v.to(text)
            return (text, *out[1:])
        patched = out.clone()
        patched[:, :n_text] = v.to(patched)
        return patched

    handles = [transformer.register_forward_pre_hook(tick), module.register_forward_hook(patch)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


# -- the authors' knockouts: an additive -inf mask for diffusers' own processors ---------------


class MaskedFlux2AttnProcessor(Flux2AttnProcessor):
    """Diffusers' double-block processor, called with ``self.mask`` as its attention mask."""

    def __init__(self, mask: torch.Tensor | None = None):
        super().__init__()
        self.mask = mask

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None):
        """The stock computation with the additive mask (a caller's own mask would collide with it)."""
        if attention_mask is not None:
            raise ValueError("MaskedFlux2AttnProcessor: the caller passed its own attention_mask")
        return super().__call__(attn, hidden_states, encoder_hidden_states, self.mask, image_rotary_emb)


class MaskedFlux2ParallelSelfAttnProcessor(Flux2ParallelSelfAttnProcessor):
    """Diffusers' single-block processor, called with ``self.mask`` as its attention mask."""

    def __init__(self, mask: torch.Tensor | None = None):
        super().__init__()
        self.mask = mask

    def __call__(self, attn, hidden_states, attention_mask=None, image_rotary_emb=None):
        """The stock computation with the additive mask (a caller's own mask would collide with it)."""
        if attention_mask is not None:
            raise ValueError("MaskedFlux2ParallelSelfAttnProcessor: the caller passed its own attention_mask")
        return super().__call__(attn, hidden_states, self.mask, image_rotary_emb)


def additive_mask(layout: TokenLayout, source: str, dest: str, dtype: torch.dtype, device) -> torch.Tensor:
    """``[1, 1, S, S]`` additive mask: ``-inf`` where queries in ``dest`` meet keys in ``source``, else 0."""
    mask = torch.zeros(1, 1, layout.seq_len, layout.seq_len, device=device)
    rows, cols = layout[dest].to(device), layout[source].to(device)
    mask[:, :, rows.unsqueeze(1), cols.unsqueeze(0)] = float("-inf")
    return mask.to(dtype)


@contextmanager
def additive_mask_knockout(transformer: nn.Module, layout: TokenLayout, source: str, dest: str):
    """Block ``source→dest`` at every block and step the authors' way; the stock processors come back after."""
    p = next(transformer.parameters())
    mask = additive_mask(layout, source, dest, p.dtype, p.device)
    saved = dict(transformer.attn_processors)
    transformer.set_attn_processor({
        name: (MaskedFlux2ParallelSelfAttnProcessor if name.startswith("single_transformer_blocks")
               else MaskedFlux2AttnProcessor)(mask)
        for name in saved})
    try:
        yield
    finally:
        transformer.set_attn_processor(dict(saved))  # set_attn_processor empties the dict it is given


# -- nnsight ----------------------------------------------------------------------------------


def _envoy(root, path: str):
    for part in path.split("."):
        root = root[int(part)] if part.isdigit() else getattr(root, part)
    return root


class NnsightTransformer:
    """nnsight's generic wrapper (``NNsight``) around a twin of a transformer: one trace per forward."""

    def __init__(self, transformer: nn.Module, module: nn.Module, n_text: int):
        from nnsight import NNsight

        self.path = module_path(transformer, module)
        self.model = NNsight(twin(transformer))
        self.n_text = n_text

    def capture(self, kwargs: dict, steps: int) -> list[torch.Tensor]:
        """``steps`` forwards on ``kwargs``, each traced; the site's text rows copied to the host."""
        out = []
        for _ in range(steps):
            with self.model.trace(**kwargs):
                site = _envoy(self.model, self.path)
                rows = _text(site.output, self.n_text).detach().to("cpu", copy=True).save()
            out.append(rows)
        return out

    def patch(self, kwargs: dict, steps: int, values: torch.Tensor) -> list:
        """``steps`` forwards on ``kwargs`` with the site's text rows overwritten by ``values``."""
        outs = []
        for _ in range(steps):
            with self.model.trace(**kwargs):
                _text(_envoy(self.model, self.path).output, self.n_text)[:] = values
                result = self.model.output.save()
            outs.append(result)
        return outs


class NnsightPipeline:
    """nnsight's diffusers support (``DiffusionModel``) around a twin of a ``Flux2KleinPipeline``.

    ``DiffusionModel`` loads a pipeline from a repo id or folder; an in-memory pipeline (the
    bench's random weights, which have no folder) is handed over as nnsight's own pipeline
    module, the object its loader would have built.
    """

    def __init__(self, pipe, module: nn.Module, n_text: int):
        from nnsight.modeling.diffusion import DiffusionModel, _PipelineModule

        self.path = "transformer." + module_path(pipe.transformer, module)
        twin_pipe = twin_pipeline(pipe)
        self.model = DiffusionModel(_PipelineModule(twin_pipe))
        self.model.pipeline = twin_pipe
        self.n_text = n_text

    def capture(self, kwargs: dict, steps: int):
        """One generation with ``kwargs``; the site's text rows at every step (host copies) and its output."""
        with self.model.generate(**kwargs) as tracer:
            rows = [].save()
            for _ in tracer.iter[0:steps]:
                rows.append(_text(_envoy(self.model, self.path).output, self.n_text).detach().to("cpu", copy=True))
            result = tracer.result.save()
        return rows, result

    def patch(self, kwargs: dict, steps: int, values: Sequence[torch.Tensor]):
        """One generation with ``kwargs`` and the site's text rows overwritten by ``values[step]``."""
        with self.model.generate(**kwargs) as tracer:
            for step in tracer.iter[0:steps]:
                _text(_envoy(self.model, self.path).output, self.n_text)[:] = values[step]
            result = tracer.result.save()
        return result
