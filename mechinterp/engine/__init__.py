"""The intervention engine: sites, token layouts, interventions and generation."""

from mechinterp.engine.edit import Edit

__all__ = ["Edit"]
