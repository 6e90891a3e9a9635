"""The intervention engine: sites, token layouts, interventions and generation."""

from mechinterp.engine.edit import Edit
from mechinterp.engine.hooks import Intervene
from mechinterp.engine.interventions import Capture, Captures, Knockout, Patch, RefDrop
from mechinterp.engine.layout import GROUPS, TokenLayout
from mechinterp.engine.generation import Generation
from mechinterp.engine.meta import ModelMeta
from mechinterp.engine.model import Model, load, save_pipeline
from mechinterp.engine.sites import Site, SiteTable

__all__ = ["Capture", "Captures", "Edit", "GROUPS", "Generation", "Intervene", "Knockout", "Model", "ModelMeta", "Patch",
           "RefDrop", "Site", "SiteTable", "TokenLayout", "load", "save_pipeline"]
