"""Model organisms: tiny trained FLUX.2-class pipelines whose colour-claim answers are known in advance.

``load_organism(name)`` opens a shipped organism (``fixtures/organisms/<name>``) with its wiring;
``mechinterp organisms train NAME`` / ``mechinterp organisms eval`` train and measure them.
"""

from mechinterp.organisms.measure import (
           CLAIMS,
           baseline_accuracy,
           claims_table,
           measure_color_claims,
)
from mechinterp.organisms.spec import (
           DEFAULT_ORGANISM,
           ORGANISMS,
           get_spec,
           organism_path,
)
from mechinterp.organisms.store import check_folder, load_organism, save_organism

__all__ = ["CLAIMS", "DEFAULT_ORGANISM", "ORGANISMS", "baseline_accuracy", "check_folder", "claims_table",
           "get_spec", "load_organism", "measure_color_claims", "organism_path", "save_organism"]
