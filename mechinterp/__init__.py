"""mechinterp: executable claims about vision-language binding in FLUX.2 in-context generation."""

from mechinterp.engine.edit import Edit

__all__ = ["Edit"]
__version__ = "0.1.0"
