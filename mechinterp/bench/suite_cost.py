"""What ``pytest claims/`` costs on FLUX.2-klein, with planned budgets and sequential stopping, from the authors' verdicts.

The claims suite does not reproduce every task of every cell: each claim draws up to its
planned budget (:func:`mechinterp.claims.budget.claim_plan`, capped by ``--samples``) in its
seeded, stratified order (the replay draws the released rows in that order) and stops at the first look of its group-sequential test that decides it. How
early that happens depends on the true rates, which the authors' released per-sample verdicts
(``verdicts/*.csv``) give: this module replays every claim with released data exactly as
``mechinterp power`` does (:func:`mechinterp.report.power.replay`: same plan, looks and seeds,
the runner's own sequential loop) and counts what the run would generate and pay for: the
intervened runs of each cell, the extra runs a relation needs on its cells' experiments beyond
the tasks the cells judged themselves (a relation is decided on pairs of its own, an unpaired one
on each arm's own tasks), the shared
I2I baselines (the union of the tasks anything drew, patching pairs counting their source and
target tasks), and the judge calls with the tokens and model the authors' judge used on exactly
those rows.

Claims without released verdicts (the reference-drop and layer-sweep claims of the
appendices) are not in the replay.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from mechinterp.bench.cost import Line, generation_seconds, t2i_prompt_lines
from mechinterp.claims import Claim, claims_by_id
from mechinterp.claims.budget import claim_plan
from mechinterp.judges.usage import BATCH_DISCOUNT, price_for
from mechinterp.report.power import FamilyDraws, available, released_outcomes, replay, task_data_dir
from mechinterp.report.released import PAIR_SEPARATOR, ReleasedRow, read_released_rows
from mechinterp.vocabulary import EXPERIMENTS


@dataclass
class SuiteCost:
    """A replay's means over seeds: generations per kind of run, judge calls and dollars."""

    generations: dict[str, float]  # kind (as generation_seconds names it) → mean count
    judge_calls: float
    judge_usd: float | None
    claims: int
    seeds: int
    samples: int | None


def claim_kind(claim: Claim) -> str:
    """The kind of run a claim's experiment makes (a key of :func:`generation_seconds`)."""
    e = claim.experiment
    kind = EXPERIMENTS.get(e.name)
    if kind is not None and kind.cost is not None:
        return kind.cost(e)
    raise ValueError(f"claim {claim.id!r}: no released-verdict replay for experiment {e.name!r}")


def judged_entities(claim: Claim, index: dict[str, Claim], outcomes, *, samples: int | None, seed: int,
                    draws: FamilyDraws | None = None) -> list[str] | tuple[list[str], list[str]]:
    """The entities (tasks or pairs) the runner would judge for ``claim`` in its order for ``seed``
    (``draws``: the families' strata; without them, a seeded shuffle) before it stops; per arm for an
    unpaired relation (each arm judges its own)."""
    plan = claim_plan(claim, index, available(claim, outcomes), samples)
    if not plan.decidable:
        return ([], []) if claim.unpaired else []
    strata, memo = draws.of(claim) if draws is not None else (None, None)
    return replay(plan, outcomes, seed, strata, memo)[1]


def judged_by_cell(claim: Claim, used) -> list[tuple[str, list[str]]]:
    """``(cell claim id, entities)`` for what :func:`judged_entities` gave: a cell's own, a paired relation's
    on both its cells, an unpaired relation's arm by arm."""
    if claim.unpaired:
        return list(zip((claim.a, claim.b), used))
    return [(cell, used) for cell in ([claim.a, claim.b] if claim.is_relation else [claim.id])]


def simulate(verdicts_dir: str | Path, claims: list[Claim], *, samples: int | None = None,
             seeds: range = range(20)) -> SuiteCost:
    """Replay every claim with released data under ``verdicts_dir`` over ``seeds``; means per seed."""
    root = Path(verdicts_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"released verdicts folder {root} does not exist")
    index = claims_by_id(claims)
    rows: dict[str, dict[str, ReleasedRow]] = {
        c.id: {r.entity: r for r in read_released_rows(root / c.csv)}
        for c in claims if not c.is_relation and c.csv and (root / c.csv).is_file()}
    if not rows:
        raise FileNotFoundError(f"none of the claims' released verdict CSVs is in {root}")
    replayed = [(c, released_outcomes(c, index, root)) for c in claims
                if (c.id in rows) or (c.is_relation and c.a in rows and c.b in rows)]
    draws = FamilyDraws(index, task_data_dir(root))
    per_seed: list[dict[str, float]] = []
    calls, usd = [], []
    for seed in seeds:
        judged: dict[str, set[str]] = {}  # cell claim id → entities judged for it (by itself or a relation)
        for claim, outcomes in replayed:
            used = judged_entities(claim, index, outcomes, samples=samples, seed=seed, draws=draws)
            for cell, entities in judged_by_cell(claim, used):
                judged.setdefault(cell, set()).update(entities)
        gens: dict[str, float] = {}
        baselines: set[str] = set()
        dollars: float | None = 0.0
        for cid, entities in judged.items():
            kind = claim_kind(index[cid])
            gens[kind] = gens.get(kind, 0) + len(entities)
            for entity in entities:
                row = rows[cid][entity]
                baselines.update(entity.split(PAIR_SEPARATOR) if kind == "patch" else [entity])
                price = price_for(row.model)
                dollars = None if dollars is None or price is None else \
                    dollars + price.dollars(row.input_tokens, row.output_tokens)
        gens["clean"] = len(baselines)
        per_seed.append(gens)
        calls.append(sum(v for k, v in gens.items() if k != "clean"))
        usd.append(dollars)
    kinds = sorted({k for g in per_seed for k in g})
    return SuiteCost({k: statistics.fmean(g.get(k, 0) for g in per_seed) for k in kinds}, statistics.fmean(calls),
                     None if None in usd else statistics.fmean(usd), len(replayed), len(seeds), samples)


def suite_lines(result: SuiteCost, clean_s: float | None = None, ratios: dict[str, float] | None = None, *,
                mfu: float = 0.45, overhead_s: float = 0.25, distinct_t2i_baselines: int = 50) -> list[Line]:
    """The replay as cost-table lines (seconds per generation from :func:`generation_seconds`)."""
    sec = generation_seconds(clean_s, ratios, mfu=mfu, overhead_s=overhead_s)
    names = {"clean": "I2I baselines (tasks any claim drew; shared)", "lens": "lens runs (4 steps)",
             "lens1": "colour lens runs (same-layer, 1 step)", "patch": "patching runs"}
    lines = [Line(names["clean"], round(result.generations["clean"]), *sec["clean"])]
    if "lens" in result.generations or "lens1" in result.generations:
        lines.append(Line("T2I lens baselines (shared per seed and size)", distinct_t2i_baselines, *sec["t2i"]))
        lines += t2i_prompt_lines(result.generations.get("lens", 0), result.generations.get("lens1", 0), sec)
    for kind, n in result.generations.items():
        if kind != "clean":
            lines.append(Line(names.get(kind, f"knockout {kind[3:]}"), round(n), *sec[kind]))
    return lines


def describe(result: SuiteCost) -> str:
    """One paragraph: what was replayed and what the judge would cost."""
    usd = "unknown (no price for the judge model)" if result.judge_usd is None else \
        f"${result.judge_usd:,.0f} synchronous, ${result.judge_usd * BATCH_DISCOUNT:,.0f} with anthropic-batch"
    cap = "each claim's planned budget" if result.samples is None else f"--samples {result.samples}"
    return (f"Claims suite (`pytest claims/`, {cap}): {result.claims} claims (cells and relations) replayed on the "
            f"authors' released verdicts with the runner's sequential test, mean of {result.seeds} seeded orders. "
            f"Judge: {result.judge_calls:,.0f} calls, {usd} (the authors' own token counts on the rows judged).")
