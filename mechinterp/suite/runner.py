"""Run one claim end to end: tasks → experiment → judge bundle → verdicts → decision.

A ``ClaimRunner`` holds the model (behind the generation cache), the judges and the run
settings. ``run(claim)`` draws tasks in the claim's fixed seeded order, runs the claim's
experiment on each, asks the judge the claim's question, and stops as soon as the
group-sequential test (``mechinterp.stats.SequentialTest``) settles the decision or the
sample budget is used up. Relations run their two cells (each once per session) and decide
on the difference.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from PIL import Image

from mechinterp import experiments as ex
from mechinterp.claims import Claim, Experiment
from mechinterp.report.run import Verdict as VerdictRow
from mechinterp.stats import SequentialTest
from mechinterp.stats.hypothesis import Decision

#: the paper's model (FLUX.2-klein-9B: 8 double and 24 single blocks), in forward order
_PAPER_SITES = ["embed", *(f"double.{i}" for i in range(8)), *(f"single.{j}" for j in range(24))]

THUMB = 96


class ClaimSkipped(Exception):
    """The claim cannot run here (data, judge or site missing); the message says what."""


@dataclass
class ClaimOutcome:
    """What one claim came to in this run."""

    claim: Claim
    decision: Decision
    k: int
    n: int
    abstained: int
    low: float
    high: float
    rows: list[VerdictRow] = field(default_factory=list)
    looks: list[int] = field(default_factory=list)
    k2: int | None = None
    n2: int | None = None
    sweep: dict[str, dict] | None = None  # per site of a sweep claim: k, n, low, high, decision

    @property
    def rate(self) -> float | None:
        """The claim's reported rate (success fraction), or the difference for relations."""
        if self.k2 is not None:
            return None if not (self.n and self.n2) else self.k / self.n - self.k2 / self.n2
        return None if not self.n else self.k / self.n

    def summary(self) -> str:
        """One line: decision, counts, rate, interval and hypothesis."""
        rate = "n/a" if self.rate is None else f"{100 * self.rate:.1f}%"
        counts = f"k={self.k}/n={self.n}" + (f" vs k={self.k2}/n={self.n2}" if self.k2 is not None else "")
        return (f"{self.claim.id}: {self.decision.value} — {counts}, rate {rate}, 95% interval "
                f"[{100 * self.low:.1f}%, {100 * self.high:.1f}%], hypothesis {self.claim.hypothesis}"
                + (f", {self.abstained} abstained" if self.abstained else ""))


def thumbnail(image: Image.Image, size: int = THUMB) -> str:
    """A small base64 PNG of an image for the report's grids."""
    im = image.copy()
    im.thumbnail((size, size))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


class ClaimRunner:
    """Runs claims on one model with one judge policy and shared caches."""

    def __init__(self, model, judge_for: Callable[[str], object], *, samples: int = 64, seed: int = 0,
                 data_dir=None, looks: int = 4, alpha: float = 0.05, size: int | None = None, steps: int | None = None,
                 on_generation: Callable[[], None] | None = None, on_progress: Callable | None = None):
        self.model = model
        self.judge_for = judge_for
        self.samples = samples
        self.seed = seed
        self.data_dir = data_dir
        self.looks = looks
        self.alpha = alpha
        meta = getattr(model, "meta", {}) or {}
        # a model that cannot run the tasks' own sizes (the organisms) names the one it runs at
        self.size = size or (int(meta["default_size"]) if meta.get("default_size") else None)
        self.steps = steps or int(meta.get("steps", meta.get("default_steps", 4)))
        self.site_map = dict(meta.get("site_map", {}))
        self.family_sites = dict(meta.get("sites", {}))
        self.on_generation = on_generation
        self.on_progress = on_progress  # (claim, samples done, budget, k, n) after each sample
        self._done: dict[str, ClaimOutcome] = {}

    # -- sites and tasks ----------------------------------------------------------------------
    def site(self, site: str, family: str | None = None, *, own: bool = False, cutoff: bool = False) -> str:
        """The model's site for a claim's (paper-numbered) site.

        A model's ``mechinterp.json`` may map paper sites to its own (``site_map``:
        ``{"single.9": "single.1"}``) or name the one block where each family binds
        (``sites``: ``{"color": "double.0"}``, as the organisms do); otherwise the paper's
        site is used as it is (FLUX.2-klein). ``own``: the site is already the model's (a sweep cell).

        ``cutoff``: the site is a reference-drop cutoff (the first severed block). On a model
        that binds per family, the paper's binding-layer cutoff maps to the block *after* the
        binding block: the first cutoff that leaves the reference reachable where it binds (the
        paper's ``single.9`` cut keeps the colour that the text read in the blocks before it).
        """
        if own:
            mapped = site
        elif site in self.site_map:
            mapped = self.site_map[site]
        elif self._binds_by_family(site, family):
            mapped = self.family_sites[family]
            if cutoff:
                bound = self.model.table.resolve(mapped)
                blocks = self.model.table.blocks
                if bound.flat + 1 >= len(blocks):
                    raise ClaimSkipped(f"model {self.model.model_id!r} binds {family!r} at its last block "
                                       f"({mapped}); no cutoff lies after it")
                mapped = blocks[bound.flat + 1].name
        else:
            mapped = site
        try:
            return self.model.table.name(mapped)
        except ValueError as err:
            raise ClaimSkipped(f"site {site!r} does not exist on model {self.model.model_id!r} and its "
                               f"mechinterp.json has no site_map entry for it ({err})") from err

    def items(self, claim: Claim) -> list:
        """The claim's tasks (or pairs, for patching) in its sampling order, up to the budget."""
        from mechinterp.tasks import load_family, load_pairs, sample

        family = claim.tasks[0] if claim.tasks else claim.family
        try:
            if claim.experiment.name == "i2i_patch":
                items = load_pairs(family, self.data_dir)
            else:
                items = load_family(family, self.data_dir)
        except (FileNotFoundError, ValueError) as err:
            raise ClaimSkipped(f"task family {family!r} is not available: {err}") from err
        return sample(items, min(self.samples, len(items)), seed=self.seed)

    def _edit(self, task, steps=None):
        """The task's edit for the lens, knockout and reference-drop runs: at the task's size (or
        the model's), its reference prepared as the authors do (``mechinterp.tasks.references``)."""
        return task.to_edit(height=self.size, width=self.size, steps=steps or self.steps)

    # -- one sample ---------------------------------------------------------------------------
    def experiment(self, claim: Claim, item, fixed_sites: bool = False) -> ex.ExperimentResult:
        """Run the claim's experiment on one task (or pair); ``fixed_sites``: its sites are the model's own."""
        e = claim.experiment

        def where(site: str) -> str:
            return self.site(site, claim.family, own=fixed_sites)

        if e.name == "t2i_lens":
            lens_steps = e.get("steps") if e.get("same_layer") else None
            return ex.t2i_lens(self.model, self._edit(item), where(e.get("site")), same_layer=bool(e.get("same_layer")),
                               lens_steps=lens_steps, tokens=e.get("tokens", "text"))
        if e.name == "knockout":
            blocks = e.get("blocks", "all")
            sites = None if blocks in (None, "all") else [where(s) for s in blocks]
            return ex.knockout(self.model, self._edit(item), e.get("source"), e.get("dest"), sites=sites)
        if e.name == "ref_drop":
            cutoff = e.get("cutoff") if fixed_sites else self.site(e.get("cutoff"), claim.family, cutoff=True)
            return ex.ref_drop(self.model, self._edit(item), cutoff)
        if e.name == "i2i_patch":
            source, target = item.to_edits(height=self.size, width=self.size, steps=self.steps)  # native source images
            return ex.i2i_patch(self.model, source, target, where(e.get("site")), tokens=e.get("tokens", "text"))
        raise ClaimSkipped(f"claim {claim.id!r} names unknown experiment {e.name!r}")

    def bundle(self, claim: Claim, result: ex.ExperimentResult) -> list[Image.Image]:
        """The images of the claim's question, in the question's role order."""
        from mechinterp.judges import QUESTIONS

        question = QUESTIONS[claim.question]
        images = result.images
        missing = [r for r in question.roles if r not in images]
        if missing:
            raise ValueError(f"experiment {result.experiment!r} gives no image for roles {missing} of question {claim.question!r}")
        return [images[r] for r in question.roles]

    # -- a claim ------------------------------------------------------------------------------
    def run(self, claim: Claim, registry: dict[str, Claim] | None = None) -> ClaimOutcome:
        """Run ``claim`` (relations: its two cells from ``registry``) and decide it."""
        if claim.id in self._done:
            return self._done[claim.id]
        if claim.is_relation:
            outcome = self._run_relation(claim, registry or {})
        elif claim.experiment is not None and claim.experiment.get("sweep"):
            outcome = self._run_sweep(claim)
        else:
            outcome = self._run_cell(claim)
        self._done[claim.id] = outcome
        return outcome

    def _run_cell(self, claim: Claim, *, alpha: float | None = None, fixed_sites: bool = False,
                  row_claim: str | None = None, task_suffix: str = "") -> ClaimOutcome:
        if claim.experiment is None or claim.question is None:
            raise ClaimSkipped(f"claim {claim.id!r} has no experiment/question to run")
        from mechinterp.judges import QUESTIONS

        judge = self.judge_for(claim.question)
        roles = QUESTIONS[claim.question].roles
        items = self.items(claim)
        test = SequentialTest(claim.hypothesis, budget=len(items), alpha=alpha or self.alpha, looks=min(self.looks, len(items)))
        rows: list[VerdictRow] = []
        k = n = abstained = 0
        pending: list = []
        for i, item in enumerate(items):
            result = self.experiment(claim, item, fixed_sites)
            pending.append((item, result, self.bundle(claim, result)))
            if self.on_generation:
                self.on_generation()
            if self.on_progress:
                self.on_progress(claim, i + 1, len(items), k, n)
            if (i + 1) in test.schedule or i + 1 == len(items):
                verdicts = judge.judge_many([(claim.question, imgs) for _, _, imgs in pending])
                for (it, res, imgs), v in zip(pending, verdicts):
                    task_id = (getattr(it, "pair_id", None) or it.task_id) + task_suffix
                    rows.append(VerdictRow(row_claim or claim.id, task_id, claim.question, v.passed, v.reason, v.judge,
                                           [{"role": r, "png": thumbnail(im)} for r, im in zip(roles, imgs)]))
                    if v.passed is None:
                        abstained += 1
                    else:
                        n += 1
                        k += claim.success(v.passed)
                pending = []
                test.update(k, n)
                if test.done:
                    break
        test.finish(k, n)  # abstentions can leave the last look short of the budget
        _, ci = claim.decide(k, n)
        return ClaimOutcome(claim, test.decision, k, n, abstained, ci.low, ci.high, rows, [lk.n for lk in test.history])

    def _binds_by_family(self, site: str, family: str | None) -> bool:
        """Whether ``site`` is mapped through the model's per-family binding site (organisms)."""
        return site not in self.site_map and family in self.family_sites and site != "embed"

    def sweep_sites(self, claim: Claim) -> list[str]:
        """The model's sites a sweep claim covers: from its (mapped) first site to ``sweep_to``
        (inclusive) or else the last block.

        ``sweep_to`` maps through ``site_map`` like any site; on a model that names one binding
        site per family (the organisms), the sweep keeps its length in blocks instead (the paper's
        ``single.9..single.13`` is five blocks from the organism's binding site), clipped to the
        model's last block.
        """
        e = claim.experiment
        sites = ["embed", *(s.name for s in self.model.table.blocks)]
        first, last = e.get(e.get("sweep")), e.get("sweep_to")
        start = sites.index(self.site(first, claim.family, cutoff=e.get("sweep") == "cutoff"))
        if not last:
            stop = len(sites) - 1
        elif self._binds_by_family(first, claim.family) and last not in self.site_map:
            # The model binds where the paper's model does not: keep the sweep's length in blocks.
            if first not in _PAPER_SITES or last not in _PAPER_SITES:
                raise ClaimSkipped(f"claim {claim.id!r}: its sweep {first}..{last} is not on the paper's model, so "
                                   f"its length on {self.model.model_id!r} is unknown; add both to site_map")
            stop = min(start + _PAPER_SITES.index(last) - _PAPER_SITES.index(first), len(sites) - 1)
        else:
            stop = sites.index(self.site(last, claim.family))
        if stop < start:
            raise ClaimSkipped(f"claim {claim.id!r}: its sweep ends ({e.get('sweep_to')}) before it starts on this model")
        return sites[start:stop + 1]

    def _run_sweep(self, claim: Claim) -> ClaimOutcome:
        """A claim over every site from its first one on: it holds when it holds at every site.

        Each site is its own sequential test at ``alpha / sites`` (Bonferroni), so both
        "holds at every site" and "refuted at some site" keep the overall error at ``alpha``.
        """
        e = claim.experiment
        key, sites = e.get("sweep"), self.sweep_sites(claim)
        alpha = self.alpha / len(sites)
        per_site: dict[str, ClaimOutcome] = {}
        for site in sites:
            params = {**dict(e.params), key: site}
            params.pop("sweep")
            params.pop("sweep_to", None)
            cell = replace(claim, experiment=Experiment(e.name, tuple(sorted(params.items()))))
            per_site[site] = self._run_cell(cell, alpha=alpha, fixed_sites=True, row_claim=claim.id, task_suffix=f"@{site}")
        decisions = {o.decision for o in per_site.values()}
        decision = (Decision.REFUTED if Decision.REFUTED in decisions else
                    Decision.HOLDS if decisions == {Decision.HOLDS} else Decision.INCONCLUSIVE)
        k, n = sum(o.k for o in per_site.values()), sum(o.n for o in per_site.values())
        _, ci = claim.decide(k, n)
        sweep = {site: {"k": o.k, "n": o.n, "low": o.low, "high": o.high, "decision": o.decision.value}
                 for site, o in per_site.items()}
        rows = [r for o in per_site.values() for r in o.rows]
        return ClaimOutcome(claim, decision, k, n, sum(o.abstained for o in per_site.values()), ci.low, ci.high, rows,
                            [], sweep=sweep)

    def _run_relation(self, claim: Claim, registry: dict[str, Claim]) -> ClaimOutcome:
        missing = [c for c in (claim.a, claim.b) if c not in registry]
        if missing:
            raise ClaimSkipped(f"relation {claim.id!r} refers to unknown claims {missing}")
        a, b = self.run(registry[claim.a], registry), self.run(registry[claim.b], registry)
        decision, ci = claim.decide(a.k, a.n, b.k, b.n)
        return ClaimOutcome(claim, decision, a.k, a.n, a.abstained + b.abstained, ci.low, ci.high, [*a.rows, *b.rows], [],
                            b.k, b.n)
