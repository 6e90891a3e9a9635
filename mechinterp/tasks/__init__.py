"""Task families and patching pairs: the paper's 2,875 edits as loadable, validated data.

``load_family(name, data_dir)`` returns a family's ``Task`` list (colour is generated in
code; the others come from the authors' task lists in a data directory),
``load_pairs(name, data_dir)`` its I2I→I2I ``Pair`` list, ``sample(family, n, seed)`` a
stratified, prefix-stable subset, and ``FAMILIES`` / ``PAIR_FAMILIES`` say what each
family is and needs. The names are imported on first use (:mod:`mechinterp.lazy`): the records
import the engine (torch), which ``mechinterp tasks --help`` must not pay for.
"""

from mechinterp.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["COLORS", "OBJECTS", "SolidColor", "color_pairs", "color_tasks"], "mechinterp.tasks.color"),
    **dict.fromkeys(["FAMILIES", "PAIR_FAMILIES", "load_family", "load_pairs"], "mechinterp.tasks.families"),
    **dict.fromkeys(["FamilyInfo", "PairFamilyInfo"], "mechinterp.vocabulary"),
    **dict.fromkeys(["Pair", "ReferenceGenerator", "Task", "TaskDataError", "task_seed"], "mechinterp.tasks.records"),
    **dict.fromkeys(["sample", "stratified_ids", "stratified_order"], "mechinterp.tasks.sampling"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
