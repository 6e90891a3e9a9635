"""Task families and patching pairs: the paper's 2,875 edits as loadable, validated data.

``load_family(name, data_dir)`` returns a family's ``Task`` list (colour is generated in
code; the others come from the authors' task lists in a data directory),
``load_pairs(name, data_dir)`` its I2I→I2I ``Pair`` list, ``sample(family, n, seed)`` a
stratified, prefix-stable subset, and ``FAMILIES`` / ``PAIR_FAMILIES`` say what each
family is and needs.
"""

from mechinterp.tasks.color import COLORS, OBJECTS, SolidColor, color_pairs, color_tasks
from mechinterp.tasks.families import FAMILIES, PAIR_FAMILIES, load_family, load_pairs
from mechinterp.vocabulary import FamilyInfo, PairFamilyInfo
from mechinterp.tasks.records import Pair, ReferenceGenerator, Task, TaskDataError, task_seed
from mechinterp.tasks.sampling import sample, stratified_ids, stratified_order

__all__ = [
    "COLORS",
    "FAMILIES",
    "OBJECTS",
    "PAIR_FAMILIES",
    "FamilyInfo",
    "Pair",
    "PairFamilyInfo",
    "ReferenceGenerator",
    "SolidColor",
    "Task",
    "TaskDataError",
    "color_pairs",
    "color_tasks",
    "load_family",
    "load_pairs",
    "sample",
    "stratified_ids",
    "stratified_order",
    "task_seed",
]
