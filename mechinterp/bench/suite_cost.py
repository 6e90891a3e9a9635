"""What ``pytest claims/`` costs on FLUX.2-klein, with sequential stopping, from the authors' verdicts.

The claims suite does not reproduce every task of every cell: each claim draws up to
``--samples`` tasks in a seeded order and stops at the first look of its group-sequential
test that decides it. How early that happens depends on the true rates, which the authors'
released per-sample verdicts (``verdicts/*.csv``) give: this module replays each cell claim's
released verdicts through the same :class:`~mechinterp.stats.SequentialTest` the runner uses
(same budget, looks and alpha) in seeded orders, and counts what the run would generate and
pay for: the intervened runs (n per claim), the shared I2I baselines (the union of the tasks
every claim drew, patching pairs counting their source and target tasks), and the judge calls
with the tokens and model the authors' judge used on exactly those rows.

Claims without released verdicts (the reference-drop and layer-sweep claims of the
appendices) are not in the replay; relations reuse their two cells' runs and cost nothing.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from mechinterp.bench.cost import Line, generation_seconds, t2i_prompt_lines
from mechinterp.claims import Claim
from mechinterp.judges.usage import BATCH_DISCOUNT, price_for
from mechinterp.report.released import ReleasedRow, read_released_rows
from mechinterp.stats import SequentialTest
from mechinterp.stats.sequential import sampling_order

#: the separator of source and target task in a released patching row's entity id
PAIR_SEPARATOR = "__"


@dataclass
class SuiteCost:
    """A replay's means over seeds: generations per kind of run, judge calls and dollars."""

    generations: dict[str, float]  # kind (as generation_seconds names it) → mean count
    judge_calls: float
    judge_usd: float | None
    claims: int
    seeds: int
    samples: int


def claim_kind(claim: Claim) -> str:
    """The kind of run a claim's experiment makes (a key of :func:`generation_seconds`)."""
    e = claim.experiment
    if e.name == "t2i_lens":
        return "lens1" if int(e.get("steps", 4)) == 1 else "lens"
    if e.name == "knockout":
        return f"ko:{e.get('source', 'ref')}->{e.get('dest')}"
    if e.name == "i2i_patch":
        return "patch"
    raise ValueError(f"claim {claim.id!r}: no released-verdict replay for experiment {e.name!r}")


def replay(claim: Claim, rows: list[ReleasedRow], *, samples: int, looks: int, alpha: float, seed: int) -> list[ReleasedRow]:
    """The rows the runner would judge for ``claim`` before its sequential test stops.

    Draws ``min(samples, len(rows))`` rows in the seeded hash order of
    :func:`~mechinterp.stats.sampling_order` (not the task families' stratified order that the
    runner draws with ``mechinterp.tasks.sample``; the families and their images are not needed
    for a replay), feeds the claim's polarity-applied outcomes to a ``SequentialTest`` whose
    budget, looks and alpha are set up as :class:`~mechinterp.suite.runner.ClaimRunner` sets them
    up, with a final look on the counts there are when abstentions leave it short, and returns the
    judged prefix (abstentions are judged, paid for and not counted).
    """
    by_id = {r.entity: r for r in rows}
    drawn = [by_id[t] for t in sampling_order(by_id, seed)[:min(samples, len(by_id))]]
    test = SequentialTest(claim.hypothesis, budget=len(drawn), alpha=alpha, looks=min(looks, len(drawn)))
    k = n = 0
    for i, row in enumerate(drawn):
        if row.passed is not None:
            n += 1
            k += claim.success(row.passed)
        if (i + 1) in test.schedule:
            test.update(k, n)
            if test.done:
                return drawn[:i + 1]
    test.finish(k, n)
    return drawn


def simulate(verdicts_dir: str | Path, claims: list[Claim], *, samples: int = 128, looks: int = 4,
             alpha: float = 0.05, seeds: range = range(20)) -> SuiteCost:
    """Replay every cell claim with a released CSV under ``verdicts_dir`` over ``seeds``; means per seed."""
    root = Path(verdicts_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"released verdicts folder {root} does not exist")
    cells = [(c, read_released_rows(root / c.csv)) for c in claims
             if not c.is_relation and c.csv and (root / c.csv).is_file()]
    if not cells:
        raise FileNotFoundError(f"none of the claims' released verdict CSVs is in {root}")
    per_seed: list[dict[str, float]] = []
    calls, usd = [], []
    for seed in seeds:
        gens: dict[str, float] = {}
        baselines: set[str] = set()
        dollars: float | None = 0.0
        for claim, rows in cells:
            judged = replay(claim, rows, samples=samples, looks=looks, alpha=alpha, seed=seed)
            kind = claim_kind(claim)
            gens[kind] = gens.get(kind, 0) + len(judged)
            for row in judged:
                baselines.update(row.entity.split(PAIR_SEPARATOR) if kind == "patch" else [row.entity])
                price = price_for(row.model)
                dollars = None if dollars is None or price is None else \
                    dollars + price.dollars(row.input_tokens, row.output_tokens)
        gens["clean"] = len(baselines)
        per_seed.append(gens)
        calls.append(sum(v for k, v in gens.items() if k != "clean"))
        usd.append(dollars)
    kinds = sorted({k for g in per_seed for k in g})
    return SuiteCost({k: statistics.fmean(g.get(k, 0) for g in per_seed) for k in kinds}, statistics.fmean(calls),
                     None if None in usd else statistics.fmean(usd), len(cells), len(seeds), samples)


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
    return (f"Claims suite (`pytest claims/`, --samples {result.samples}): {result.claims} cell claims replayed on the "
            f"authors' released verdicts with the runner's sequential test, mean of {result.seeds} seeded orders. "
            f"Judge: {result.judge_calls:,.0f} calls, {usd} (the authors' own token counts on the rows judged).")
