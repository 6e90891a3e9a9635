"""Model organisms: tiny trained FLUX.2-class pipelines whose colour-claim answers are known in advance.

``load_organism(name)`` opens a shipped organism (``mechinterp/organisms/shipped/<name>``) with its wiring;
``mechinterp organisms train NAME`` / ``eval`` / ``claims`` train them, check their baseline and decide
the colour claims on them with the claims suite. The names are imported on first use
(:mod:`mechinterp.lazy`): the specs import the engine (torch), which ``mechinterp organisms --help``
must not pay for.
"""

from mechinterp.lazy import lazy_exports

_EXPORTS = {
    "baseline_accuracy": "mechinterp.organisms.measure",
    **dict.fromkeys(["ORGANISMS", "get_spec", "organism_path"], "mechinterp.organisms.spec"),
    **dict.fromkeys(["check_folder", "load_organism", "save_organism"], "mechinterp.organisms.store"),
    "DEFAULT_ORGANISM": "mechinterp.resources",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
