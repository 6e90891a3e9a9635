"""Resolve ``--model``: an organism name, a local folder, or a Hugging Face hub id."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mechinterp.resources import DEFAULT_ORGANISM, organisms_dir


def shipped_organisms() -> list[str]:
    """Names of the organisms shipped in the package."""
    root = organisms_dir()
    return sorted(p.name for p in root.iterdir() if (p / "model_index.json").exists()) if root.is_dir() else []


def resolve_model(spec: str | None) -> str:
    """Turn a ``--model`` value into something ``mechinterp.load`` opens (folder path or hub id).

    Organism names win over same-named relative folders; anything else is passed through,
    and ``mechinterp.load`` names it in its error when it is neither a folder nor cached.
    """
    spec = spec or DEFAULT_ORGANISM
    candidate = organisms_dir() / spec
    if "/" not in spec and (candidate / "model_index.json").exists():
        return str(candidate)
    if "/" not in spec and not Path(spec).exists():
        raise ValueError(f"unknown model {spec!r}: not a shipped organism ({', '.join(shipped_organisms()) or 'none'}), "
                         "not a local folder and not a Hugging Face id (owner/name)")
    return spec


def _looks_like_hub_id(ref: str) -> bool:
    return not ref.startswith((".", "/", "~")) and ref.count("/") == 1 and all(ref.split("/"))


def check_model(spec: str | None) -> str:
    """:func:`resolve_model`, then one ``ValueError`` naming ``--model`` when it cannot be opened: a
    path that is no folder, a folder without ``model_index.json``, or (with ``HF_HUB_OFFLINE`` set)
    a hub id that is not in the Hugging Face cache. Imports no torch (it runs at pytest start-up)."""
    path = resolve_model(spec)
    folder = Path(path).expanduser()
    if folder.is_dir():
        if not (folder / "model_index.json").is_file():
            raise ValueError(f"--mi-model {spec!r}: folder {str(folder)!r} has no model_index.json "
                             "(expected a diffusers Flux2KleinPipeline folder)")
        return path
    if not _looks_like_hub_id(path):
        raise ValueError(f"--mi-model {spec!r}: no such folder, and not a Hugging Face repo id (owner/name); "
                         f"organisms: {', '.join(shipped_organisms()) or 'none'}")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on") and hub_folder(path) is None:
        raise ValueError(f"--mi-model {spec!r}: not in the Hugging Face cache and HF_HUB_OFFLINE is set "
                         f"(download it first: huggingface-cli download {path})")
    return path


def hub_folder(repo_id: str) -> Path | None:
    """The cached snapshot folder of a hub model, or ``None`` when it is not cached."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - the hub library raises several types for a missing or partial cache
        return None


def model_outline(spec: str | None):
    """``(SiteTable, ModelMeta)`` of a model read from its files, without loading it (to check claim
    files at collection); ``None`` when the model is not on this machine."""
    from mechinterp.engine.meta import ModelMeta
    from mechinterp.engine.sites import SiteTable

    path = resolve_model(spec)
    folder = Path(path).expanduser()
    if not folder.is_dir():
        folder = hub_folder(path) if _looks_like_hub_id(path) else None
        if folder is None:
            return None
    try:
        config = json.loads((folder / "transformer" / "config.json").read_text())
        table = SiteTable(int(config["num_layers"]), int(config["num_single_layers"]))
        meta = ModelMeta.read(folder)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not readable here: the model's load will say why
    return table, meta
