"""mechinterp: executable claims about vision-language binding in FLUX.2 in-context generation."""

from mechinterp.engine import (
    GROUPS,
    Capture,
    Captures,
    Edit,
    Generation,
    Intervene,
    Knockout,
    Model,
    Patch,
    RefDrop,
    SiteTable,
    TokenLayout,
    load,
)

__all__ = ["Capture", "Captures", "Edit", "GROUPS", "Generation", "Intervene", "Knockout", "Model", "Patch",
           "RefDrop", "SiteTable", "TokenLayout", "load"]
__version__ = "0.1.0"
