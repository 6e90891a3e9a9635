"""Resolve ``--model``: an organism name, a local folder, or a Hugging Face hub id."""

from __future__ import annotations

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
