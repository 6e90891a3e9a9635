"""``Model``: a FLUX.2-klein pipeline with a site table, token layouts and intervened generation.

``mechinterp.load`` opens one from a local folder or the Hugging Face cache; ``Model(pipe)``
wraps one already built (e.g. ``mechinterp.testing.tiny_pipeline()``). A model folder may
carry ``mechinterp.json`` beside the diffusers files: the text length the model was built
for and its *wiring* (permanent knockouts of a model organism, applied on every generation).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from mechinterp.engine.batch import generate_many
from mechinterp.engine.edit import Edit
from mechinterp.engine.generation import Generation, generation_args, render
from mechinterp.engine.hooks import Intervene, check_modes
from mechinterp.engine.identity import ModelSource, content_id
from mechinterp.engine.interventions import Intervention, Knockout
from mechinterp.engine.layout import TokenLayout, build_layout
from mechinterp.engine.meta import ModelMeta
from mechinterp.engine.sites import SiteTable

#: The paper's sampling: no classifier-free guidance. FLUX.2-klein is step-distilled and ignores
#: guidance; the pipeline's own default is 4.0, so it is passed explicitly. A non-distilled
#: checkpoint (``is_distilled`` false in its pipeline config) also runs at 1.0, i.e. without CFG:
#: one transformer pass per step, the pass every intervention is defined on. That is not such a
#: checkpoint's recommended sampling (CFG, more steps), and is said so in ``Model.sampling``.
GUIDANCE_SCALE = 1.0
#: token layouts a model keeps (a suite run sees a few hundred prompts)
_LAYOUT_MEMO_SIZE = 4096
#: bytes of text embeddings ``Model.prompt_embeds`` keeps (an organism prompt is ~36 KB, a FLUX.2-klein one 7.9 MB)
PROMPT_MEMO_BYTES = 64 << 20
#: where the initial noise is drawn: ``"device"`` (the model's device, as the authors' runs:
#: ``torch.Generator(<model device>)``, so CUDA noise on a GPU) or ``"cpu"`` (device-independent)
GENERATORS = ("device", "cpu")


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class Model:
    """A ``Flux2KleinPipeline`` plus everything the experiments need to intervene on it.

    ``sites`` lists every site in forward order; ``layout(edit)`` gives the token groups of an
    edit; ``generate(edit, interventions, capture)`` runs the pipeline under an ``Intervene``;
    ``generate_many(edits, ...)`` runs edits that share a shape as one batch.

    ``knockout_mode`` (``"auto"``, ``"split"``, ``"flex"``, ``"dense"``) and ``ref_drop_mode``
    (``"truncate"``, ``"mask"``) choose how knockouts and reference drops are computed; every
    mode gives the same images to float tolerance, the defaults are the fast ones. They are
    constructor arguments, read-only after; :meth:`with_modes` gives a model (same pipeline) with others.
    """

    def __init__(self, pipe, *, max_sequence_length: int | None = None, text_encoder_out_layers: Sequence[int] | None = None,
                 wiring: Iterable[Knockout] | None = None, model_id: str | None = None,
                 meta: ModelMeta | dict | None = None, source: ModelSource | None = None, generator: str = "device",
                 knockout_mode: str = "auto", ref_drop_mode: str = "truncate"):
        """Wrap ``pipe``; ``meta`` (a :class:`ModelMeta`, default: the one ``pipe`` carries) gives the text
        length, text-encoder layers, wiring and id unless the keyword arguments name them."""
        self._knockout_mode, self._ref_drop_mode = check_modes(knockout_mode, ref_drop_mode)
        #: reference latents of batched generations by (reference digest, device, dtype) (``engine.batch``)
        self.reference_memo: dict = {}
        #: token layouts by (prompt, instruction, size, reference size): tokenising is a generation's hot spot
        self.layout_memo: dict = {}
        #: text embeddings by (prompt, text length, encoder layers) (:meth:`prompt_embeds`)
        self.prompt_memo: dict = {}
        if generator not in GENERATORS:
            raise ValueError(f"generator {generator!r}: expected one of {', '.join(GENERATORS)} "
                             "(the model's device, as the authors' runs, or the CPU for device-independent noise)")
        self.generator = generator
        if meta is None:
            meta = ModelMeta.of(pipe)
        elif isinstance(meta, dict):
            meta = ModelMeta.from_dict(meta)
        given = {"max_sequence_length": max_sequence_length, "model_id": model_id,
                 "text_encoder_out_layers": None if text_encoder_out_layers is None else tuple(text_encoder_out_layers),
                 "wiring": None if wiring is None else tuple(k.to_dict() for k in wiring)}
        meta = meta.replace(**{k: v for k, v in given.items() if v is not None})
        self.pipe = pipe
        self.transformer = pipe.transformer
        self.table = SiteTable.for_transformer(self.transformer)
        self.text_len = int(max_sequence_length or meta.text_len)
        self.text_encoder_out_layers = tuple(int(x) for x in (text_encoder_out_layers or meta.out_layers))
        if wiring is None:
            wiring = [Knockout.from_dict(d) for d in meta.wiring]
        self.wiring = tuple(k.resolved(self.table) for k in wiring)
        self.model_id = model_id or meta.model_id or "in-memory"
        self.meta: ModelMeta = meta
        self.source = source or ModelSource("memory")
        self._identity: str | None = None
        self.multiple_of = pipe.vae_scale_factor * 2
        pipe.set_progress_bar_config(disable=True)

    # -- introspection ------------------------------------------------------------------------
    @property
    def sites(self) -> list[str]:
        """Every site name in forward order: ``embed``, ``double.0``…, ``single.0``…"""
        return self.table.names

    @property
    def identity(self) -> str:
        """The model by content (hub commit, folder files or in-memory tensors; ``engine.identity``),
        computed once: what a generation cache keys on, so a changed weight is a different model."""
        if self._identity is None:
            self._identity = content_id(self.source, self.pipe)
        return self._identity

    @property
    def device(self) -> torch.device:
        """Device of the transformer."""
        return next(self.transformer.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Parameter dtype of the transformer."""
        return next(self.transformer.parameters()).dtype

    @property
    def noise_device(self) -> torch.device:
        """The device whose generator draws the initial noise (see ``GENERATORS``)."""
        return self.device if self.generator == "device" else torch.device("cpu")

    def noise(self, seed: int) -> torch.Generator:
        """A generator seeded with ``seed`` on ``noise_device``: the same seed gives the same noise
        on one device type (CPU and CUDA generators draw different streams)."""
        return torch.Generator(self.noise_device).manual_seed(seed)

    @property
    def sampling(self) -> dict:
        """How this model samples, for run metadata and cache keys: noise device type, guidance, CFG."""
        distilled = bool(getattr(getattr(self.pipe, "config", None), "is_distilled", False))
        return {"noise": self.noise_device.type, "guidance_scale": GUIDANCE_SCALE, "cfg": False,
                "distilled": distilled,
                "note": "step-distilled: guidance unused" if distilled else
                        "not distilled: run without CFG (guidance 1.0, one pass per step), not its recommended sampling"}

    def sampling_key(self) -> str:
        """The part of every generation's cache key that the sampling settings decide."""
        return f"noise={self.noise_device.type};guidance={GUIDANCE_SCALE:g}"

    def layout(self, edit: Edit) -> TokenLayout:
        """Token groups of ``edit`` in the joint sequence ``[text | image | ref]`` (memoised by what
        decides them: prompt, instruction, size and reference size; a layout is never modified)."""
        ref_size = None if edit.reference is None else edit.reference.size
        key = (edit.text, edit.instruction, edit.height, edit.width, ref_size)
        layout = self.layout_memo.get(key)
        if layout is None:
            if len(self.layout_memo) >= _LAYOUT_MEMO_SIZE:
                self.layout_memo.pop(next(iter(self.layout_memo)))
            layout = self.layout_memo[key] = build_layout(self.pipe.tokenizer, edit.text, edit.instruction,
                                                          self.text_len, edit.height, edit.width, ref_size,
                                                          self.multiple_of)
        return layout

    def intervene(self, edit: Edit, *interventions: Intervention, layout: TokenLayout | None = None,
                  layouts: Sequence[TokenLayout] | None = None) -> Intervene:
        """A context applying ``interventions`` (plus the model's wiring) for generations of ``edit``.

        ``layout`` is ``self.layout(edit)`` when the caller has it already (it is computed otherwise);
        ``layouts`` are a batch's rows, ``layout`` first (see ``Intervene``).
        """
        layout = self.layout(edit) if layout is None else layout
        # a wire into or out of the reference is vacuous when the edit has none (e.g. the T2I Lens run)
        wiring = [k for k in self.wiring if k.source in layout and k.dest in layout]
        return Intervene(self.transformer, layout, [*wiring, *interventions], table=self.table, n_steps=edit.steps,
                         knockout_mode=self.knockout_mode, ref_drop_mode=self.ref_drop_mode, layouts=layouts)

    @property
    def knockout_mode(self) -> str:
        """How knockouts are computed (``"auto"``, ``"split"``, ``"flex"``, ``"dense"``)."""
        return self._knockout_mode

    @property
    def ref_drop_mode(self) -> str:
        """How reference drops are computed (``"truncate"``, ``"mask"``)."""
        return self._ref_drop_mode

    def with_modes(self, knockout_mode: str | None = None, ref_drop_mode: str | None = None) -> "Model":
        """This model (the same pipeline, no copy of weights) computing knockouts / reference drops another way."""
        other = copy.copy(self)
        other._knockout_mode, other._ref_drop_mode = check_modes(knockout_mode or self.knockout_mode,
                                                                 ref_drop_mode or self.ref_drop_mode)
        return other

    # -- generation ---------------------------------------------------------------------------
    def pipeline_kwargs(self, edit: Edit) -> dict:
        """The pipeline's arguments for ``edit`` as a user would pass them (prompt as text); ``generate``
        passes these with the prompt as its embedding (:meth:`call_kwargs`), which gives the same image."""
        return dict(
            prompt=edit.text,
            image=edit.reference,
            height=edit.height,
            width=edit.width,
            num_inference_steps=edit.steps,
            guidance_scale=GUIDANCE_SCALE,
            generator=self.noise(edit.seed),
            max_sequence_length=self.text_len,
            text_encoder_out_layers=self.text_encoder_out_layers,
        )

    def prompt_embeds(self, texts: Sequence[str]) -> torch.Tensor:
        """The pipeline's text embeddings of ``texts`` as one ``[len(texts), text_len, hidden]`` tensor:
        each prompt encoded alone, exactly as ``pipe.encode_prompt`` encodes it, and memoised by prompt.

        A suite generates the same few prompts thousands of times and no intervention acts on the
        text encoder, so its output is a function of the prompt alone. The memo is bounded by bytes
        (``PROMPT_MEMO_BYTES``): thousands of organism prompts, a few of FLUX.2-klein's 512-token ones.
        """
        rows = []
        for text in texts:
            key = (text, self.text_len, self.text_encoder_out_layers)
            row = self.prompt_memo.get(key)
            if row is None:
                row, _ = self.pipe.encode_prompt(prompt=text, device=self.device, max_sequence_length=self.text_len,
                                                 text_encoder_out_layers=self.text_encoder_out_layers)
                self.prompt_memo[key] = row
                while len(self.prompt_memo) > 1 and sum(_nbytes(t) for t in self.prompt_memo.values()) > PROMPT_MEMO_BYTES:
                    self.prompt_memo.pop(next(iter(self.prompt_memo)))  # oldest first
            rows.append(row)
        return rows[0] if len(rows) == 1 else torch.cat(rows)

    def call_kwargs(self, edits: Sequence[Edit]) -> dict:
        """The pipeline arguments of one run of ``edits`` (one batch): ``pipeline_kwargs`` of the first, with
        every prompt given as its memoised embedding (:meth:`prompt_embeds`) and, for several edits, one
        noise generator per edit (each sample then draws its one-by-one noise)."""
        kwargs = self.pipeline_kwargs(edits[0])
        kwargs.update(prompt=None, prompt_embeds=self.prompt_embeds([e.text for e in edits]))
        if len(edits) > 1:
            kwargs["generator"] = [self.noise(e.seed) for e in edits]
        return kwargs

    @torch.inference_mode()
    def generate(self, edit: Edit, interventions: Iterable[Intervention] = (), capture: Iterable = ()) -> Generation:
        """Generate ``edit`` with ``interventions`` applied and the ``capture`` sites recorded.

        With no interventions (and no wiring) the image is exactly the pipeline's own output
        for ``pipeline_kwargs(edit)`` (the prompt's memoised embedding is what the pipeline computes).
        """
        (edit,), interventions, captures = generation_args((edit,), interventions, capture)
        with self.intervene(edit, *interventions, *captures) as ctx:
            out = self.pipe(**self.call_kwargs([edit]), output_type="np")
        if ctx.step + 1 != edit.steps:
            raise RuntimeError(f"expected {edit.steps} transformer calls, saw {ctx.step + 1}")
        array = np.asarray(out.images[0], dtype=np.float32)
        image = render(array)
        return Generation(image, array, ctx.captures, edit, ctx.layout, interventions, ctx.fired)

    def generate_many(self, edits: Sequence[Edit], interventions: Iterable[Intervention] = (),
                      capture: Iterable = ()) -> list[Generation]:
        """Generate edits that share a shape (size, steps, reference token count) in one batch.

        Each result equals ``generate`` of its edit to float tolerance; see ``engine.batch``.
        """
        return generate_many(self, edits, interventions, capture)

    def save(self, path: str | os.PathLike) -> Path:
        """Save the pipeline and its metadata (wiring, text length, ...) so :func:`load` reopens this model."""
        return save_pipeline(self.pipe, path, self.meta)

    def __repr__(self) -> str:
        return f"Model({self.model_id!r}, sites={len(self.sites)}, text_len={self.text_len}, wiring={len(self.wiring)})"


def _resolve_dtype(dtype) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(names)}")
    return names[dtype]


def save_pipeline(pipe, path: str | os.PathLike, meta: ModelMeta | None = None) -> Path:
    """Save a pipeline with ``save_pretrained`` (safetensors) and its ``mechinterp.json`` beside it, so
    :func:`load` reopens it as the same model; ``meta``: the metadata (default: the one ``pipe`` carries)."""
    path = Path(path)
    meta = meta if meta is not None else ModelMeta.of(pipe)
    meta.attach(pipe).save_pretrained(path, safe_serialization=True)
    meta.write(path)
    return path


def load(path_or_repo_id: str | os.PathLike, device: str | torch.device | None = None, dtype=None,
         generator: str = "device") -> Model:
    """Load a ``Flux2KleinPipeline`` from a local folder or the Hugging Face cache as a ``Model``.

    ``generator``: where the initial noise is drawn (``"device"``, the authors' choice, or ``"cpu"``).

    A local folder is used when it exists; otherwise the argument is a hub id looked up in the
    local cache (``local_files_only`` whenever ``HF_HUB_OFFLINE`` is set, and as a first try in
    any case). ``ValueError`` names the path or id when neither has it.
    """
    from diffusers import Flux2KleinPipeline

    torch_dtype = _resolve_dtype(dtype)
    ref = str(path_or_repo_id)
    folder = Path(ref).expanduser()
    kwargs = {} if torch_dtype is None else {"dtype": torch_dtype}
    if folder.is_dir():
        if not (folder / "model_index.json").exists():
            raise ValueError(f"model folder {ref!r} has no model_index.json: not a diffusers pipeline folder")
        try:
            pipe = Flux2KleinPipeline.from_pretrained(folder, **kwargs)
        except Exception as err:
            raise ValueError(f"model folder {ref!r} could not be loaded: {err}") from err
        meta = ModelMeta.read(folder)
        source = ModelSource("folder", str(folder.resolve()))
    else:
        if ref.startswith((".", "/", "~")) or os.sep in ref.strip("/").replace("/", "", 1) or ref.count("/") != 1:
            raise ValueError(f"unknown model {ref!r}: no such folder, and not a Hugging Face repo id (owner/name)")
        pipe = _from_hub_cache(Flux2KleinPipeline, ref, kwargs)
        snapshot = hub_snapshot(ref)
        meta = ModelMeta.read(snapshot)
        source = ModelSource("hub", ref, snapshot.name)
    meta = meta if meta.model_id else meta.replace(model_id=ref)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe.to(device)
    if torch.device(device).type == "cpu":
        _own_memory(pipe)
    return Model(pipe, meta=meta, source=source, generator=generator)


def hub_snapshot(repo_id: str) -> Path:
    """The cached snapshot folder of a hub model, ``.../snapshots/<commit>`` (the revision it was loaded at)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as err:  # the hub library raises several types for an incomplete cache
        raise ValueError(f"hub model {repo_id!r} has no snapshot in the Hugging Face cache: {err}") from err


def _own_memory(pipe) -> None:
    """Copy memory-mapped safetensors weights into ordinary memory.

    CPU kernels pick their code path by alignment; mmap'd weights can take a different one
    and differ in the last float bit from the same model built in memory. Owning the
    memory makes a reloaded model bit-identical to the one that was saved.
    """
    for name in ("transformer", "vae", "text_encoder"):
        module = getattr(pipe, name, None)
        if module is None:
            continue
        for t in [*module.parameters(), *module.buffers()]:
            t.data = t.data.clone()


def _from_hub_cache(cls, repo_id: str, kwargs: dict):
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    errors = []
    for local_only in ([True] if offline else [True, False]):
        try:
            return cls.from_pretrained(repo_id, local_files_only=local_only, **kwargs)
        except Exception as err:  # hub and cache errors come in many types
            errors.append(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    where = "the Hugging Face cache" + ("" if offline else " or the Hub")
    raise ValueError(f"unknown model {repo_id!r}: not a local folder and not found in {where} ({'; '.join(errors)})")
