"""The organism trainer: fit a tiny VAE, then train the transformer by flow matching under its wiring.

Everything goes through the real pipeline's own pieces: the reference and targets are encoded
with ``Flux2KleinPipeline._encode_vae_image`` (VAE mode + patchify + the VAE's batch-norm
statistics), packed with ``_pack_latents``, positioned with the pipeline's id helpers, and the
text is the pipeline's ``encode_prompt`` output from the frozen random Qwen3 encoder. The noise
levels trained on include exactly the scheduler's inference sigmas. The organism's wiring is
applied with ``mechinterp.engine.hooks.Intervene`` during training, as the engine applies it at
inference. Training is seeded and resumable: a checkpoint holds the weights, optimiser, learning
rate schedule and random-generator state, so a resumed run is bit-identical to an unbroken one. It also
holds the key of the run it belongs to (organism and configuration): a checkpoint of another run (a reused
or swapped work folder) or with non-finite weights or losses is refused with an error naming the file, never
resumed from; a run whose loss or weights turn non-finite stops with an error naming the organism and step
instead of saving them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mechinterp.engine.hooks import Intervene
from mechinterp.engine.layout import build_layout
from mechinterp.engine.meta import ModelMeta
from mechinterp.io import atomic_write
from mechinterp.organisms.data import (
    COLORS,
    OBJECTS,
    instruction,
    reference_image,
    target_image,
    train_combos,
)
from mechinterp.organisms.spec import Arch, OrganismSpec, build_components, build_vae
from mechinterp.organisms.vae import fit_latent_stats, set_analytic

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (the defaults train a shipped organism)."""

    steps: int = 1500
    batch: int = 32
    lr: float = 2e-3
    no_ref_every: int = 5  # every n-th batch has no reference (half of it no instruction either)
    checkpoint_every: int = 100
    inference_steps: int = 4
    arch: Arch = field(default_factory=Arch)


@dataclass
class TrainResult:
    """What a run produced: the pipeline, its loss history and timing."""

    pipe: object
    losses: list[float]
    seconds: float
    config: TrainConfig

    @property
    def final_loss(self) -> float:
        """Mean loss over the last 50 steps (or all, when fewer); NaN for a run with no steps."""
        loss = _final_loss(self.losses)
        return float("nan") if loss is None else loss


def _final_loss(losses: list[float]) -> float | None:
    """Mean of the last 50 losses (or all, when fewer); ``None`` when there are none."""
    return float(np.mean(losses[-50:])) if losses else None


def _pipeline(components: dict):
    from diffusers import Flux2KleinPipeline

    pipe = Flux2KleinPipeline(**components, is_distilled=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _pixels(pipe, images) -> torch.Tensor:
    return torch.cat([pipe.image_processor.preprocess(im) for im in images])


def fit_vae(pipe, cfg: TrainConfig, task: str = "color") -> None:
    """Set the VAE analytically (colour-exact, ``mechinterp.organisms.vae``) and fit its latent statistics
    to the images of ``task`` (``color`` or ``glyph``)."""
    size = cfg.arch.image_size
    if task == "glyph":
        from mechinterp.organisms.glyph_data import vae_images

        images = vae_images(size)
    else:
        images = [target_image(o, rgb, size) for rgb in COLORS.values() for o in OBJECTS]
        images += [target_image(o, None, size) for o in OBJECTS] + [target_image(None, None, size)]
        images += [reference_image(c, size) for c in COLORS]
    set_analytic(pipe.vae)
    fit_latent_stats(pipe, _pixels(pipe, images))


def refit_vae(folder: str | Path, channels: tuple[int, ...] = Arch.vae_channels) -> Path:
    """Rebuild a saved organism's VAE analytically at ``channels`` and save it in place (weights, config and
    ``training.arch.vae_channels`` in ``mechinterp.json``; the widths it was trained beside are kept as
    ``vae_refit_from``).

    Why this is safe: the analytic VAE has no trained weights, and at any width of at least 7 its latents are the
    mean colour of each pixel block (to float rounding, ~1e-5), so the transformer trained beside the old one
    sees the same inputs. Why do it: the decoder ran at every generation, and (16, 32, 32, 32) made it a sixth
    of the main job's time. Only ``vae/`` and ``mechinterp.json`` are rewritten."""
    from mechinterp.engine.model import load

    folder = Path(folder)
    if len(channels) < 2 or min(channels) < 7:
        raise ValueError(f"VAE channels {tuple(channels)}: expected at least two blocks of at least 7 channels "
                         "(3 colour, 3 negated colour and the anchor channel)")
    model = load(folder, device="cpu")
    meta, pipe = model.meta, model.pipe
    training = dict(meta.training or {})
    arch_fields = dict(training.get("arch") or {})
    if not arch_fields:
        raise ValueError(f"organism folder {str(folder)!r} has no training.arch in mechinterp.json: not an organism")
    known = {k: v for k, v in arch_fields.items() if k in Arch.__dataclass_fields__}
    if len(channels) != len(known.get("vae_channels", channels)):
        raise ValueError(f"VAE channels {tuple(channels)}: the organism's VAE has {len(known['vae_channels'])} blocks "
                         "(the block count fixes the latent resolution); give as many widths")
    arch = Arch(**{**known, "vae_channels": tuple(channels),
                   "text_out_layers": tuple(known.get("text_out_layers", Arch.text_out_layers))})
    pipe.register_modules(vae=build_vae(arch))
    fit_vae(pipe, TrainConfig(arch=arch), "glyph" if meta.tasks.get("human") == "glyph" else "color")
    old = list(known.get("vae_channels") or [])
    training["arch"] = {**arch_fields, "vae_channels": list(channels)}
    if old != list(channels):
        training.setdefault("vae_refit_from", old)
    # only the VAE and the record change: re-saving the whole pipeline would rewrite the other components'
    # configs with the running library's defaults
    pipe.vae.save_pretrained(folder / "vae", safe_serialization=True)
    meta.replace(training=training).write(folder)
    return folder


class Data:
    """Pre-encoded training data: packed latents of every target and reference, text embeddings, ids, layouts."""

    def __init__(self, pipe, arch: Arch):
        size, L = arch.image_size, arch.text_len
        with torch.no_grad():
            enc = lambda ims: pipe._pack_latents(pipe._encode_vae_image(_pixels(pipe, ims), None))
            self.target = {(c, o): enc([target_image(o, rgb, size)])[0] for c, rgb in COLORS.items() for o in OBJECTS}
            self.gray = {o: enc([target_image(o, None, size)])[0] for o in OBJECTS}
            self.blank = enc([target_image(None, None, size)])[0]
            ref_lat = {c: pipe._encode_vae_image(_pixels(pipe, [reference_image(c, size)]), None) for c in COLORS}
            self.ref = {c: pipe._pack_latents(t)[0] for c, t in ref_lat.items()}
            prompts = [instruction(o) for o in OBJECTS] + [""]
            emb, txt_ids = pipe.encode_prompt(prompts, device="cpu", max_sequence_length=L,
                                              text_encoder_out_layers=arch.text_out_layers)
        self.text = dict(zip([*OBJECTS, ""], emb))
        self.txt_ids = txt_ids[0]
        any_ref = next(iter(ref_lat.values()))
        self.img_ids = pipe._prepare_latent_ids(any_ref)[0]
        self.ref_ids = pipe._prepare_image_ids([any_ref])[0]
        self.layouts, classes = {}, {}
        for o in OBJECTS:
            lay = build_layout(pipe.tokenizer, instruction(o), instruction(o), L, size, size, (size, size),
                               pipe.vae_scale_factor * 2)
            key = tuple(tuple(lay.groups[g].tolist()) for g in sorted(lay.groups))
            self.layouts[o] = lay
            classes.setdefault(key, []).append(o)
        #: objects grouped by identical token layout (a batch shares one layout, so one wiring mask)
        self.classes = list(classes.values())

    def examples(self, step: int, cfg: "TrainConfig", gen: torch.Generator):
        """One batch of colour examples (:func:`_examples`)."""
        return _examples(self, step, cfg, gen)


def task_data(pipe, spec: OrganismSpec, arch: Arch, seed: int = 0):
    """The training data of ``spec``'s task: :class:`Data` (colour) or ``GlyphData`` (glyph identity)."""
    if spec.task == "glyph":
        from mechinterp.organisms.glyph_data import GlyphData

        return GlyphData(pipe, arch, seed)
    return Data(pipe, arch)


def inference_sigmas(pipe, steps: int, n_tokens: int) -> list[float]:
    """The sigmas the pipeline's scheduler uses for ``steps`` steps on ``n_tokens`` image tokens."""
    import copy

    from diffusers.pipelines.flux2.pipeline_flux2_klein import compute_empirical_mu

    sched = copy.deepcopy(pipe.scheduler)
    sched.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=compute_empirical_mu(n_tokens, steps))
    return [float(s) for s in sched.sigmas[:-1]]


def _examples(data: Data, step: int, cfg: TrainConfig, gen: torch.Generator):
    """One batch of colour examples: (targets, references or None, text, layout or None)."""
    B = cfg.batch
    no_ref = cfg.no_ref_every > 0 and step % cfg.no_ref_every == cfg.no_ref_every - 1
    if no_ref:
        picks = torch.randint(2 * len(OBJECTS), (B,), generator=gen).tolist()
        objs = [OBJECTS[k] if k < len(OBJECTS) else "" for k in picks]
        x0 = torch.stack([data.gray[o] if o else data.blank for o in objs])
        refs, layout = None, None
    else:
        klass = data.classes[step % len(data.classes)]
        combos = [(c, o) for c, o in train_combos() if o in klass]
        picks = torch.randint(len(combos), (B,), generator=gen).tolist()
        chosen = [combos[k] for k in picks]
        objs = [o for _, o in chosen]
        x0 = torch.stack([data.target[co] for co in chosen])
        refs = torch.stack([data.ref[c] for c, _ in chosen])
        layout = data.layouts[objs[0]]
    return x0, refs, torch.stack([data.text[o] for o in objs]), layout


def _batch(data, step: int, cfg: TrainConfig, gen: torch.Generator, sig_grid: torch.Tensor):
    """One training batch: (inputs, ids, text, target velocity, noise level, layout or None).

    ``data`` is the task's pre-encoded data (:class:`Data` for colour, ``GlyphData`` for the glyph
    identity task); its ``examples(step, cfg, gen)`` draws the batch's targets, references and text.
    """
    B = cfg.batch
    x0, refs, text, layout = data.examples(step, cfg, gen)
    noise = torch.randn(x0.shape, generator=gen)
    from_grid = torch.rand(B, generator=gen) < 0.5
    sigma = torch.where(from_grid, sig_grid[torch.randint(len(sig_grid), (B,), generator=gen)], torch.rand(B, generator=gen))
    s = sigma.view(B, 1, 1)
    xt = (1 - s) * x0 + s * noise
    ids = data.img_ids
    if refs is not None:
        xt, ids = torch.cat([xt, refs], dim=1), torch.cat([data.img_ids, data.ref_ids])
    return xt, ids, text, noise - x0, sigma, layout


def _predict(transformer, data: Data, xt, ids, text, sigma, layout, wiring):
    B = xt.shape[0]
    kwargs = {"hidden_states": xt, "timestep": sigma, "guidance": None, "encoder_hidden_states": text,
                  "txt_ids": data.txt_ids.expand(B, -1, -1), "img_ids": ids.expand(B, -1, -1), "return_dict": False}
    # a wire into or out of the reference is vacuous in a reference-free batch, as the engine has it
    # (``Model.intervene``); a batch with no layout runs unwired
    wires = [k for k in wiring if layout is not None and k.source in layout and k.dest in layout]
    ctx = (Intervene(transformer, layout, wires, knockout_mode="dense")  # masks local to this context
           if wires else contextlib.nullcontext())
    with ctx:
        out = transformer(**kwargs)[0]
    return out[:, : data.img_ids.shape[0]]


def _meta(spec: OrganismSpec, cfg: TrainConfig, extra: dict) -> ModelMeta:
    return ModelMeta(
        model_id=f"mechinterp/organism-{spec.name}",
        organism=spec.name,
        max_sequence_length=cfg.arch.text_len,
        text_encoder_out_layers=tuple(cfg.arch.text_out_layers),
        default_size=cfg.arch.image_size,
        default_steps=cfg.inference_steps,
        sites={spec.family: spec.binding, "binding": spec.binding},
        tasks={"human": "glyph"} if spec.task == "glyph" else {},
        wiring=tuple(k.to_dict() for k in spec.wiring),
        training={**{k: v for k, v in asdict(cfg).items() if k != "arch"}, "arch": asdict(cfg.arch), **extra},
    )


def train(spec: OrganismSpec, cfg: TrainConfig | None = None, *, workdir: str | Path | None = None,
          progress: bool = True, stop_after: int | None = None) -> TrainResult:
    """Train organism ``spec``; resumes from ``workdir/checkpoint.pt`` when present.

    ``stop_after`` ends the run early (after that many transformer steps in total), leaving a
    checkpoint, as an interruption would. The returned pipeline carries its :class:`ModelMeta`
    (wiring, text length, training record) in its config, ready for ``save_pipeline``.
    """
    from tqdm.auto import tqdm

    cfg = cfg or TrainConfig()
    t0 = time.perf_counter()
    elapsed = lambda: time.perf_counter() - t0 + (ckpt or {}).get("seconds", 0.0)
    gen = torch.Generator().manual_seed(spec.seed + 1000)
    pipe = _pipeline(build_components(cfg.arch, spec.seed))
    transformer = pipe.transformer
    ckpt_path = Path(workdir) / CHECKPOINT if workdir else None
    ckpt = _load_checkpoint(ckpt_path, run_key(spec, cfg)) if ckpt_path and ckpt_path.exists() else None
    fit_vae(pipe, cfg, spec.task)
    data = task_data(pipe, spec, cfg.arch, spec.seed)
    sig_grid = torch.tensor(sorted(set(inference_sigmas(pipe, cfg.inference_steps, data.img_ids.shape[0])
                                       + inference_sigmas(pipe, 1, data.img_ids.shape[0]))))
    for p in [*pipe.vae.parameters(), *pipe.text_encoder.parameters()]:
        p.requires_grad_(False)
    opt = torch.optim.AdamW(transformer.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.steps, 4),
                                                pct_start=max(0.1, 2.5 / max(cfg.steps, 4)))
    losses: list[float] = []
    start = 0
    if ckpt is not None:
        transformer.load_state_dict(ckpt["transformer"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        gen.set_state(ckpt["generator"])
        losses, start = list(ckpt["losses"]), int(ckpt["step"])
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    transformer.train()
    bar = tqdm(range(start, end), desc=spec.name, disable=not progress, mininterval=2, initial=start, total=cfg.steps)
    for step in bar:
        xt, ids, text, v, sigma, layout = _batch(data, step, cfg, gen, sig_grid)
        pred = _predict(transformer, data, xt, ids, text, sigma, layout, spec.wiring)
        loss = F.mse_loss(pred, v)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(transformer.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", refresh=False)
        done = step + 1
        if ckpt_path and (done % cfg.checkpoint_every == 0 or done == end):
            _save_checkpoint(ckpt_path, pipe, opt, sched, gen, losses, done, elapsed(), key=run_key(spec, cfg))
    transformer.eval()
    seconds = elapsed()
    extra = {"final_loss": _final_loss(losses),
             "steps_done": len(losses), "seconds": round(seconds, 1), "torch_threads": torch.get_num_threads()}
    _meta(spec, cfg, extra).attach(pipe)
    return TrainResult(pipe, losses, seconds, cfg)


def run_key(spec: OrganismSpec, cfg: TrainConfig) -> str:
    """The key of one training run (the organism and every setting but its description and how often it
    checkpoints): a checkpoint resumes only the run it was written by."""
    settings = {k: v for k, v in asdict(cfg).items() if k != "checkpoint_every"}
    return hashlib.sha256(json.dumps([{k: v for k, v in asdict(spec).items() if k != "purpose"}, settings], sort_keys=True, default=str).encode()).hexdigest()


def _non_finite(state: dict, losses: list[float]) -> list[str]:
    """What in a checkpoint is not finite: the names of its floating-point weights, and ``losses``."""
    bad = [name for name, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    return bad + (["losses"] if not all(math.isfinite(x) for x in losses) else [])


def _save_checkpoint(path: Path, pipe, opt, sched, gen, losses, step, seconds=0.0, *, key: str) -> None:
    state = pipe.transformer.state_dict()
    bad = _non_finite(state, losses)
    if bad:
        raise ValueError(f"training diverged by step {step}: non-finite values in {', '.join(bad[:5])}; "
                         f"not saved to {str(path)!r} (lower --lr or check the data)")
    buf = io.BytesIO()
    torch.save({"key": key, "transformer": state, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "generator": gen.get_state(), "losses": losses, "step": step, "seconds": seconds}, buf)
    atomic_write(path, buf.getvalue())


def _load_checkpoint(path: Path, key: str) -> dict:
    hint = "delete it (or train with --fresh) to start the run afresh"
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise ValueError(f"training checkpoint {str(path)!r} is corrupt or not a checkpoint ({err}); {hint}") from err
    if not isinstance(ckpt, dict) or ckpt.get("key") != key:
        raise ValueError(f"training checkpoint {str(path)!r} belongs to another run (key "
                         f"{str(ckpt.get('key') if isinstance(ckpt, dict) else None)[:16]}…, this run's {key[:16]}…: "
                         f"another organism or configuration, or an older mechinterp); {hint}")
    bad = _non_finite(ckpt["transformer"], ckpt["losses"])
    if bad:
        raise ValueError(f"training checkpoint {str(path)!r} holds non-finite values in {', '.join(bad[:5])}; {hint}")
    return ckpt


@torch.no_grad()
def eval_loss(pipe, spec: OrganismSpec, cfg: TrainConfig, batches: int = 4, seed: int = 12345) -> float:
    """Mean flow-matching loss of ``pipe``'s transformer on a fixed set of batches (same data every call)."""
    gen = torch.Generator().manual_seed(seed)
    data = task_data(pipe, spec, cfg.arch, seed)
    sig_grid = torch.tensor(inference_sigmas(pipe, cfg.inference_steps, data.img_ids.shape[0]))
    total = 0.0
    for step in range(batches):
        xt, ids, text, v, sigma, layout = _batch(data, step, cfg, gen, sig_grid)
        total += F.mse_loss(_predict(pipe.transformer, data, xt, ids, text, sigma, layout, spec.wiring), v).item()
    return total / batches
