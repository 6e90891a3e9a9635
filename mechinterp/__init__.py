"""mechinterp: executable claims about vision-language binding in FLUX.2 in-context generation.

The engine's public names (``Model``, ``load``, ``Edit``, ``Capture``, ``Patch``, ``Knockout``,
``RefDrop``, ...) are imported on first use (PEP 562), so tools that only need the judges,
statistics or reports do not pay for importing torch and diffusers.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"
__all__ = ["Capture", "Captures", "Edit", "GROUPS", "Generation", "Intervene", "Knockout", "Model", "ModelMeta", "Patch",
           "RefDrop", "SiteTable", "TokenLayout", "load", "save_pipeline"]


def __getattr__(name: str):
    """Import an engine name on first use."""
    if name not in __all__:
        raise AttributeError(f"module 'mechinterp' has no attribute {name!r}")
    value = getattr(importlib.import_module("mechinterp.engine"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
