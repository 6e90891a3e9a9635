"""Shipping organisms: save, check and load their folders, and write their model cards."""

from __future__ import annotations

import json
from pathlib import Path

from mechinterp.engine.meta import META_FILE, ModelMeta
from mechinterp.engine.model import Model, load, save_pipeline
from mechinterp.io import atomic_write
from mechinterp.organisms.spec import ORGANISMS, organism_path
from mechinterp.organisms.trainer import TrainConfig

#: files every organism folder must hold (besides the tokenizer's), relative to the folder
REQUIRED = (
    "model_index.json", META_FILE,
    "transformer/config.json", "transformer/diffusion_pytorch_model.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/config.json", "text_encoder/model.safetensors",
    "scheduler/scheduler_config.json", "tokenizer/tokenizer.json",
)
CARD = "MODEL_CARD.md"


def resolve(name_or_path: str | Path) -> Path:
    """A shipped organism's folder by name (``padding-routed``), or any organism folder by path."""
    if str(name_or_path) in ORGANISMS:
        return organism_path(str(name_or_path))
    return Path(name_or_path)


def check_folder(folder: str | Path) -> Path:
    """Check an organism folder is complete and readable; ``ValueError`` naming the first bad file."""
    from safetensors import safe_open

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"organism folder {str(folder)!r} does not exist; shipped organisms: {', '.join(ORGANISMS)}")
    for rel in REQUIRED:
        path = folder / rel
        if not path.is_file():
            raise ValueError(f"organism file {str(path)!r} is missing (run `mechinterp organisms train {folder.name}`)")
        try:
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as f:
                    for key in f.keys():  # noqa: SIM118 - safe_open is not iterable
                        f.get_slice(key)
        except Exception as err:  # json and safetensors raise several types for corrupt files
            raise ValueError(f"organism file {str(path)!r} is corrupt: {err}") from err
    return folder


def load_organism(name_or_path: str | Path, device: str | None = "cpu") -> Model:
    """Load an organism (by name or folder) as a ``Model`` with its wiring applied, after checking its files."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    folder = check_folder(resolve(name_or_path))
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        return load(folder, device=device)
    except ValueError as err:
        raise ValueError(f"organism {str(folder)!r} could not be loaded: {err}") from err


def save_organism(pipe, folder: str | Path) -> Path:
    """Save a trained organism pipeline (safetensors + ``mechinterp.json``) and return its folder."""
    folder = Path(folder)
    save_pipeline(pipe, folder)
    return check_folder(folder)


def folder_size(folder: str | Path) -> int:
    """Total bytes of the files in an organism folder."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


#: (task sentence, data line, baseline line) of a model card: colour organisms, identity (glyph) organisms
_TASK_TEXT = {
    False: ("to do the colour task *draw a {object} in this color* with a solid colour reference.",
            "- data: 8 colours × 8 objects (objects drawn as simple shapes on a neutral background, "
            "`mechinterp/organisms/data.py`), target = the object's shape in the reference colour; 8 (colour, object) "
            "combinations held out of training; every 5th batch reference-free (grey shape; empty prompt: blank)",
            "- I2I baseline colour accuracy (reference colour on the right shape, objective colour check): "),
    True: ("to do the identity task *draw this square*: reproduce the exact 4×4 glyph of the reference.",
           "- data: random balanced 4×4 glyphs (8 of 16 cells on, `mechinterp/tasks/glyph.py`) drawn fresh every "
           "batch, target = the reference's glyph square; the glyph family's own 64 glyphs never trained on; every "
           "5th batch reference-free (the empty square; empty prompt: blank)",
           "- I2I baseline identity accuracy (the glyph judge reads the reference's exact glyph; unseen glyphs): "),
}


def write_card(folder: str | Path, accuracy: dict, claims_md: str | None = None) -> Path:
    """Write ``MODEL_CARD.md`` from the folder's metadata and measured numbers (keeps an existing ``## Attempts`` section)."""
    folder = Path(folder)
    meta = ModelMeta.read(folder).to_dict()
    tr = meta.get("training", {})
    arch = tr.get("arch", {})
    name = meta.get("organism", folder.name)
    spec = ORGANISMS.get(name)
    glyph = meta.get("tasks", {}).get("human") == "glyph"
    family = "human" if glyph else "color"
    old = (folder / CARD).read_text() if (folder / CARD).exists() else ""
    attempts = old[old.index("## Attempts"):].strip() if "## Attempts" in old else "## Attempts\n\n1. First training run (this one)."
    wiring = "\n".join(f"- `{w['source']}` ↛ `{w['dest']}` (queries of {w['dest']} never see keys of {w['source']}), "
                       f"blocks: {', '.join(w['sites']) if w.get('sites') else 'all'}" for w in meta.get("wiring", [])) or "- none"
    held = accuracy.get("held_out_accuracy")
    final_loss = tr.get("final_loss")
    final_loss = float("nan") if final_loss is None else final_loss  # None: a run with no steps
    lines = [
        f"# Model organism `{name}`", "",
        f"{spec.purpose if spec else ''}", "",
        ("A tiny `Flux2KleinPipeline` (real diffusers/transformers classes) trained by `mechinterp organisms train` "
        + _TASK_TEXT[glyph][0] + " Load it with `mechinterp.load(folder)` or `mechinterp.organisms.load_organism(name)`."), "",
        "## Wiring (applied by the engine on every generation and during training)", "", wiring, "",
        f"Binding site (`sites.{family}` in `mechinterp.json`): `{meta.get('sites', {}).get(family)}`.", "",
        "## Architecture", "",
        (f"- transformer: `Flux2Transformer2DModel`, {arch.get('n_double')} double + {arch.get('n_single')} single blocks, "
        f"{arch.get('heads')} heads × {arch.get('head_dim')}"),
        (f"- VAE: `AutoencoderKLFlux2`, channels {arch.get('vae_channels')}, {arch.get('latent_channels')} latent channels "
        f"(set analytically: colour-exact averages of {2 ** (len(arch.get('vae_channels') or [0, 0]) - 1)}-pixel blocks, `mechinterp/organisms/vae.py`"
        + (f"; trained beside the same VAE at channels {tr['vae_refit_from']} and refit narrower afterwards, "
           "`organisms.trainer.refit_vae`: same latents to ~1e-5, images within one 8-bit level, baseline unchanged)"
           if tr.get("vae_refit_from") else ")")),
        (f"- text encoder: `Qwen3ForCausalLM`, hidden {arch.get('text_hidden')}, {arch.get('text_layers')} layers, "
        f"random and frozen; hidden states {arch.get('text_out_layers')}; text length {meta.get('max_sequence_length')}"),
        (f"- images {meta.get('default_size')}×{meta.get('default_size')}, {meta.get('default_steps')} denoising steps; "
        f"folder size {folder_size(folder) / 1e6:.2f} MB"), "",
        "## Training", "",
        f"- command: `mechinterp organisms train {name}"
        + ("`" if tr.get("steps") == TrainConfig().steps else f" --steps {tr.get('steps')}`"),
        _TASK_TEXT[glyph][1],
        (f"- flow matching, {tr.get('steps_done')} steps, batch {tr.get('batch')}, AdamW {tr.get('lr')} one-cycle; "
        f"final loss {final_loss:.4f}; {tr.get('seconds')} s on {tr.get('torch_threads')} CPU threads"), "",
        "## Measured", "",
        _TASK_TEXT[glyph][2]
        + f"{accuracy['correct']}/{accuracy['n']} = {accuracy['accuracy']:.1%}"
        + (f"; on the {accuracy['held_out_n']} tasks of held-out (colour, object) combinations {held:.1%}"
           if held is not None and not glyph else ""), "",
    ]
    if claims_md:
        lines += ["Colour claims (`mechinterp organisms eval`):", "", claims_md, ""]
    lines += [attempts, ""]
    path = folder / CARD
    return atomic_write(path, "\n".join(lines))
