"""What a claim draws its samples from, and in which order: one definition that the runner and the
replays of the authors' released verdicts both read.

A cell claim draws from the task family its ``tasks`` names (else its own family); a patching
claim (an experiment whose table row says ``pairs``) from the pair family of that name. The order
is :func:`mechinterp.tasks.stratified_ids`: the runner takes its prefix, and a replay draws the
released rows in the same order (:func:`draw_order`), so it simulates the draws a run makes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from mechinterp.tasks import stratified_ids


def drawn_family(claim, tasks: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """``(family name, pairs)``: the task family (or pair family, when ``pairs``) a cell claim draws from
    (``tasks``: a model's map from a claim's task family to the one standing for it there, its
    ``mechinterp.json`` ``tasks``: the identity organisms draw ``glyph`` for ``human``)."""
    if claim.is_relation:
        raise ValueError(f"relation {claim.id!r} draws no tasks of its own: its cells {claim.a!r} and {claim.b!r} do")
    family, pairs = claim.draws
    return (tasks or {}).get(family, family), pairs


def claim_items(claim, data_dir: str | Path | None = None, *, verify: bool = True,
                tasks: Mapping[str, str] | None = None) -> list:
    """Every task (or pair) a cell claim can draw, in the authors' order (``verify``: check the
    reference images against the manifest; a replay, which generates nothing, passes ``False``)."""
    from mechinterp.tasks import load_family, load_pairs

    family, pairs = drawn_family(claim, tasks)
    return load_pairs(family, data_dir, verify) if pairs else load_family(family, data_dir, verify)


def draw_order(entities: Iterable[str], strata: Mapping[str, str] | None, seed: int,
               family_orders: dict[int, list[str]] | None = None) -> list[str]:
    """``entities`` in the runner's order for ``seed``: the stratified order of the whole family
    (``strata``: entity -> stratum) restricted to them; entities the family lacks (or all, without
    ``strata``) follow in the same order taken over one stratum, a seeded shuffle.
    ``family_orders``: a seed -> family order memo for these ``strata``, shared by the replays of
    every claim on that family."""
    wanted = set(entities)
    if strata and family_orders is not None:
        if seed not in family_orders:
            family_orders[seed] = stratified_ids(strata, seed)
        full = family_orders[seed]
    else:
        full = stratified_ids(strata, seed) if strata else []
    known = [e for e in full if e in wanted]
    rest = wanted.difference(known)
    return known + stratified_ids(dict.fromkeys(rest, ""), seed) if rest else known
