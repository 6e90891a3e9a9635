"""The intervention engine: sites, token layouts, interventions and generation."""

from mechinterp.engine.edit import Edit
from mechinterp.engine.hooks import Intervene
from mechinterp.engine.interventions import Capture, Captures, Knockout, Patch, RefDrop
from mechinterp.engine.layout import GROUPS, TokenLayout
from mechinterp.engine.model import Generation, Model, load
from mechinterp.engine.sites import Site, SiteTable

__all__ = ["Capture", "Captures", "Edit", "GROUPS", "Generation", "Intervene", "Knockout", "Model", "Patch",
           "RefDrop", "Site", "SiteTable", "TokenLayout", "load"]
