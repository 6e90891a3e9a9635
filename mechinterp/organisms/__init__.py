"""Model organisms: tiny trained FLUX.2-class pipelines whose colour-claim answers are known in advance.

``load_organism(name)`` opens a shipped organism (``mechinterp/organisms/shipped/<name>``) with its wiring;
``mechinterp organisms train NAME`` / ``eval`` / ``claims`` train them, check their baseline and decide
the colour claims on them with the claims suite.
"""

from mechinterp.organisms.measure import baseline_accuracy
from mechinterp.organisms.spec import (
           ORGANISMS,
           get_spec,
           organism_path,
)
from mechinterp.organisms.store import check_folder, load_organism, save_organism
from mechinterp.resources import DEFAULT_ORGANISM

__all__ = ["DEFAULT_ORGANISM", "ORGANISMS", "baseline_accuracy", "check_folder", "get_spec", "load_organism",
           "organism_path", "save_organism"]
