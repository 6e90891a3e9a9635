"""mechinterp: executable claims about vision-language binding in FLUX.2 in-context generation.

The engine's public names (``Model``, ``load``, ``Edit``, ``Capture``, ``Patch``, ``Knockout``,
``RefDrop``, ...) are imported on first use (PEP 562, :mod:`mechinterp.lazy`), so tools that only need
the judges, statistics or reports do not pay for importing torch and diffusers.
"""

from __future__ import annotations

from mechinterp.lazy import lazy_exports

__version__ = "0.1.0"
__all__ = ["Capture", "Captures", "Edit", "GROUPS", "Generation", "Intervene", "Knockout", "Model", "ModelMeta", "Patch",
           "RefDrop", "SiteTable", "TokenLayout", "load", "save_pipeline"]
__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(__all__, "mechinterp.engine"))
