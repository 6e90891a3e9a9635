"""Run one claim end to end: tasks → experiment → judge bundle → verdicts → decision.

A ``ClaimRunner`` holds the model (behind the generation cache), the judges and the run
settings. ``run(claim)`` plans the claim (:func:`mechinterp.claims.budget.claim_plan`: the
budget that gives its design point 90 % power, capped by ``--samples``), draws its tasks in the
fixed seeded order, and feeds :func:`mechinterp.stats.run_sequential` — the one sequential loop,
also used by the released-verdict replays — with a callback that runs the experiment on each
look's new tasks and asks the judge in one batch. A claim whose cap leaves no outcome that could
make it hold is reported so before anything is generated. Relations run their two cells (each
decided on its own) and then their own test: a paired relation on the tasks both cells draw,
extending the cells' runs where it needs more pairs (the caches make shared tasks free); an
unpaired one (its cells draw different tasks) with each arm drawing its own tasks in its own order,
on the model its cell's family runs on (``runner_for``: the session's runner per family).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass, replace

from PIL import Image

from mechinterp import experiments as ex
from mechinterp.claims import Claim, Experiment
from mechinterp.claims.budget import PAPER_SITES, claim_plan
from mechinterp.claims.draws import claim_items, drawn_family
from mechinterp.io import bounded_memo, pixel_key
from mechinterp.report.run import VerdictRow
from mechinterp.stats import ALPHA, LOOKS, ArmsTally, Decision, PairTally, Plan, Tally, plain_interval, run_sequential
from mechinterp.stats.plan import smallest_decidable
from mechinterp.suite.outcome import ClaimOutcome, plan_record
from mechinterp.vocabulary import EXPERIMENTS

THUMB = 96
#: task-id suffixes of a relation's own verdict rows (its arms a and b on one task)
ARM_SUFFIX = ("|a", "|b")


class ClaimSkipped(Exception):
    """The claim cannot run here (data, judge or site missing); the message says what."""


@dataclass(frozen=True)
class Judged:
    """One item's verdict for one claim: the row to record and the polarity-applied outcome."""

    row: VerdictRow
    outcome: bool | None


def transition_record(sites: list[str], at: int, claimed, located, transition, decision: Decision) -> dict:
    """A transition's claimed site and window and the located span as site names (``"end"``: past the
    last site), with the decision, for ``results.json`` and the report's sweep plot."""
    def name(i: int) -> str:
        return sites[i] if i < len(sites) else "end"

    return {"at": name(at), "claimed": [name(claimed.lo), name(claimed.hi)],
            "located": [name(located.lo), name(located.hi)], "within": transition.within,
            "holds": transition.holds, "decision": decision.value}


def item_id(item) -> str:
    """A task's or pair's id (what verdict rows and pairing use)."""
    return getattr(item, "pair_id", None) or item.task_id


def thumbnail(image: Image.Image, size: int = THUMB) -> str:
    """A small base64 PNG of an image for the report's grids. A plain RGB image (no metadata, which the PNG
    would carry) is memoised by its pixels at the default size: a claim's references and baselines recur in
    many bundles, and each is encoded once."""
    if size == THUMB and image.mode == "RGB" and not image.info:
        return _plain_thumbnail(image)
    return _encode_thumbnail(image, size)


def _encode_thumbnail(image: Image.Image, size: int) -> str:
    im = image
    if im.width > size or im.height > size:  # a smaller image is left as it is by thumbnail: no copy
        im = image.copy()
        im.thumbnail((size, size))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@bounded_memo(pixel_key)
def _plain_thumbnail(image: Image.Image) -> str:  # RGB images only (thumbnail checks): size and pixels decide
    return _encode_thumbnail(image, THUMB)


@dataclass(frozen=True)
class _Context:
    """The :class:`~mechinterp.vocabulary.RunContext` of one claim: its model, edits and site mapping."""

    runner: "ClaimRunner"
    family: str | None
    fixed_sites: bool
    using: object = None  # the model the experiment generates with (a batched look's prefetch), else the runner's

    @property
    def model(self):
        """The model the experiment generates with: the runner's, or the look's batching stand-in."""
        return self.runner.model if self.using is None else self.using

    def edit(self, item):
        """The task's I2I edit at the runner's size and steps."""
        return self.runner._edit(item)

    def edits(self, item):
        """A pair's (source, target) edits, source images native."""
        return item.to_edits(height=self.runner.size, width=self.runner.size, steps=self.runner.steps)

    def site(self, site: str) -> str:
        """The model's site for the claim's site."""
        return self.runner.site(site, self.family, own=self.fixed_sites)

    def cutoff(self, site: str) -> str:
        """The model's site for the claim's reference-drop cutoff."""
        return site if self.fixed_sites else self.runner.site(site, self.family, cutoff=True)


class ClaimRunner:
    """Runs claims on one model with one judge policy and shared caches."""

    def __init__(self, model, judge_for: Callable[[str], object], *, samples: int | None = None, seed: int = 0,
                 data_dir=None, looks: int = LOOKS, alpha: float = ALPHA, size: int | None = None,
                 steps: int | None = None, on_generation: Callable[[], None] | None = None,
                 on_progress: Callable | None = None, batch: int = 1,
                 runner_for: Callable[[str | None], "ClaimRunner"] | None = None):
        """``samples``: a cap on each claim's planned budget (``None``: the plan's own); ``alpha``:
        one-sided error per wrong direction; ``looks``: looks per claim; ``on_progress(claim, done,
        budget, k, n)`` is called after each look; ``batch``: generations computed together within
        a look (``mechinterp.suite.batching``; 1: one by one); ``runner_for(family)``: the runner a
        relation's cell of that family runs on (a session's runner per model; default: this one)."""
        self.model = model
        self.judge_for = judge_for
        self.samples = samples
        self.seed = seed
        self.data_dir = data_dir
        self.looks = looks
        self.alpha = alpha
        meta = model.meta
        # a model that cannot run the tasks' own sizes (the organisms) names the one it runs at
        self.size = size or meta.size
        self.steps = steps or meta.steps
        self.site_map = dict(meta.site_map)
        self.family_sites = dict(meta.sites)
        #: the task family that stands for a claim's on this model (the identity organisms: human -> glyph)
        self.task_map = dict(meta.tasks)
        self.on_generation = on_generation
        self.on_progress = on_progress  # (claim, samples done, budget, k, n) after each sample
        self.batch = batch
        self._runner_for = runner_for
        self._done: dict[str, ClaimOutcome] = {}
        self._judged: dict[tuple, Judged] = {}

    def runner_for(self, family: str | None) -> "ClaimRunner":
        """The runner a relation's cell of ``family`` runs on: the session's for that family, else this one."""
        return self if self._runner_for is None else self._runner_for(family)

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
            if site in PAPER_SITES and not own:  # a paper claim this model has no counterpart of
                raise ClaimSkipped(f"site {site!r} does not exist on model {self.model.model_id!r} and its "
                                   f"mechinterp.json has no site_map entry for it ({err})") from err
            raise ValueError(f"site {mapped!r} does not exist on model {self.model.model_id!r} "
                             f"(and is not a site of the paper's model to map): {err}") from None

    def check_sites(self, claim: Claim) -> None:
        """Resolve every site of ``claim`` on this model (a sweep: each of its sites, and its transition's); ``ValueError``
        for a site neither on the model nor on the paper's (a typo), ``ClaimSkipped`` for a paper
        site the model has no counterpart of."""
        e = claim.experiment
        if e is None:
            return
        for key in ("site", "cutoff"):
            if e.get(key) is not None:
                self.site(e.get(key), claim.family, cutoff=key == "cutoff")
        if e.get("sweep"):
            sites = self.sweep_sites(claim)
            if claim.transition is not None:
                self.transition_at(claim, sites)

    def items(self, claim: Claim) -> list:
        """All the claim's tasks (or pairs, for patching) in its sampling order; a plan takes a prefix
        (what a claim draws and the order: :mod:`mechinterp.claims.draws`, which the replays read too).
        A model's ``tasks`` (mechinterp.json) may name the family that stands for the claim's on it."""
        from mechinterp.tasks import stratified_order

        try:
            items = claim_items(claim, self.data_dir, tasks=self.task_map)
        except (FileNotFoundError, ValueError) as err:
            raise ClaimSkipped(f"task family {drawn_family(claim, self.task_map)[0]!r} is not available: {err}") from err
        return stratified_order(items, self.seed)

    def _edit(self, task, steps=None):
        """The task's edit for the lens, knockout and reference-drop runs: at the task's size (or
        the model's), its reference prepared as the authors do (``mechinterp.tasks.references``)."""
        return task.to_edit(height=self.size, width=self.size, steps=steps or self.steps)

    # -- one sample ---------------------------------------------------------------------------
    def experiment(self, claim: Claim, item, fixed_sites: bool = False, model=None) -> ex.ExperimentResult:
        """Run the claim's experiment on one task (or pair) through its row of the experiment table
        (``mechinterp.vocabulary.EXPERIMENTS``); ``fixed_sites``: its sites are the model's own;
        ``model``: generate with this stand-in of the runner's model (a batched look's)."""
        kind = EXPERIMENTS.get(claim.experiment.name)
        if kind is None:
            raise ClaimSkipped(f"claim {claim.id!r} names unknown experiment {claim.experiment.name!r}")
        return kind.run(_Context(self, claim.family, fixed_sites, model), item, claim.experiment)

    def experiments(self, claim: Claim, items: list, fixed_sites: bool = False) -> list[ex.ExperimentResult]:
        """:meth:`experiment` on each item, their generations computed ``batch`` at a time."""
        from mechinterp.suite.batching import run_batched

        jobs = [lambda model, item=item: self.experiment(claim, item, fixed_sites, model) for item in items]
        return run_batched(self.model, jobs, self.batch)

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
        registry = registry or {claim.id: claim}
        if claim.is_relation:
            outcome = self._run_relation(claim, registry)
        elif claim.experiment is not None and claim.experiment.get("sweep"):
            outcome = self._run_sweep(claim, registry)
        else:
            outcome = self._run_cell(claim, registry)
        self._done[claim.id] = outcome
        return outcome

    def plan(self, claim: Claim, registry: dict[str, Claim], available: int, sites: int = 1) -> Plan:
        """The claim's plan under this runner's cap, looks and alpha."""
        return claim_plan(claim, registry, available, self.samples, sites=sites, looks=self.looks, alpha=self.alpha)

    def _undecidable(self, claim: Claim, plan: Plan) -> str:
        design = plan.design
        # a relation's search calibrates a design per budget it tries: look no further than what a run could use
        limit = 8 * (plan.budget + 1) if design.relation else 10_000
        need = smallest_decidable(design.hypothesis, plan.budget + 1, looks=self.looks, alpha=design.alpha,
                                  limit=limit, unpaired=design.unpaired)
        if self.samples is not None and plan.cap == self.samples:
            why = "--samples"
        elif claim.paper is not None and plan.cap == claim.paper.n:
            why = "the paper's cell"
        else:
            why = "the tasks there are"
        return (f"undecidable with at most {plan.cap} tasks ({why}): no outcome can make {claim.hypothesis} hold "
                f"before {need or 'many more'} tasks; nothing was run")

    def judged(self, claim: Claim, items: list, fixed_sites: bool = False, task_suffix: str = "",
               row_claim: str | None = None) -> list[Judged]:
        """Run the claim's experiment on ``items`` and judge them in one batch (memoised per claim and item)."""
        from mechinterp.judges import QUESTIONS

        if claim.experiment is None or claim.question is None:
            raise ClaimSkipped(f"claim {claim.id!r} has no experiment/question to run")
        key = (claim, fixed_sites, task_suffix)
        todo = [it for it in items if (key, item_id(it)) not in self._judged]
        if todo:
            judge = self.judge_for(claim.question)
            roles = QUESTIONS[claim.question].roles
            bundles = []
            for result in self.experiments(claim, todo, fixed_sites):
                bundles.append(self.bundle(claim, result))
                if self.on_generation:
                    self.on_generation()
            verdicts = judge.judge_many([(claim.question, imgs) for imgs in bundles])
            for item, imgs, v in zip(todo, bundles, verdicts):
                row = VerdictRow.of(row_claim or claim.id, item_id(item) + task_suffix, v,
                                    [{"role": r, "png": thumbnail(im)} for r, im in zip(roles, imgs)])
                self._judged[(key, item_id(item))] = Judged(row, None if v.passed is None else claim.success(v.passed))
        return [self._judged[(key, item_id(it))] for it in items]

    def _run_cell(self, claim: Claim, registry: dict[str, Claim], *, sites: int = 1, fixed_sites: bool = False,
                  row_claim: str | None = None, task_suffix: str = "") -> ClaimOutcome:
        items = self.items(claim)
        plan = self.plan(claim, registry, len(items), sites)
        if not plan.decidable:
            return ClaimOutcome(claim, Decision.INCONCLUSIVE, 0, 0, 0, plain_interval(Tally()),
                                plan=plan_record(plan), note=self._undecidable(claim, plan))
        items = items[:plan.cap]  # abstentions are replaced by later tasks, up to the cap
        judged: list[Judged] = []

        def draw(m: int) -> list[bool | None]:
            got = self.judged(claim, items[len(judged):len(judged) + m], fixed_sites, task_suffix, row_claim)
            judged.extend(got)
            if self.on_progress:
                done = Tally.of([j.outcome for j in judged])
                self.on_progress(claim, len(judged), plan.budget, done.k, done.n)
            return [j.outcome for j in got]

        test, seen = run_sequential(plan.design, draw)
        counts = Tally.of(seen)
        return ClaimOutcome(claim, test.decision, counts.k, counts.n, counts.abstained, plain_interval(counts),
                            test.last.interval, test.last.worst_case, plan_record(plan), [j.row for j in judged],
                            [look.n for look in test.history])

    def _binds_by_family(self, site: str, family: str | None) -> bool:
        """Whether ``site`` is mapped through the model's per-family binding site (organisms)."""
        return site not in self.site_map and family in self.family_sites and site != "embed" and site in PAPER_SITES

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
            if first not in PAPER_SITES or last not in PAPER_SITES:
                raise ClaimSkipped(f"claim {claim.id!r}: its sweep {first}..{last} is not on the paper's model, so "
                                   f"its length on {self.model.model_id!r} is unknown; add both to site_map")
            stop = min(start + PAPER_SITES.index(last) - PAPER_SITES.index(first), len(sites) - 1)
        else:
            stop = sites.index(self.site(last, claim.family))
        if stop < start:
            raise ClaimSkipped(f"claim {claim.id!r}: its sweep ends ({e.get('sweep_to')}) before it starts on this model")
        return sites[start:stop + 1]

    def _run_sweep(self, claim: Claim, registry: dict[str, Claim]) -> ClaimOutcome:
        """A claim over every site from its first one on: it holds when it holds at every site.

        Each site is its own sequential test at ``alpha / sites`` (Bonferroni) planned for power
        ``0.9 ** (1 / sites)``, so "holds at every site" keeps 90 % power and both "holds at every
        site" and "refuted at some site" keep each direction's error at ``alpha``.
        """
        e = claim.experiment
        key, sites = e.get("sweep"), self.sweep_sites(claim)
        per_site: dict[str, ClaimOutcome] = {}
        for site in sites:
            params = {**dict(e.params), key: site}
            params.pop("sweep")
            params.pop("sweep_to", None)
            cell = replace(claim, experiment=Experiment(e.name, tuple(sorted(params.items()))))
            per_site[site] = self._run_cell(cell, registry, sites=len(sites), fixed_sites=True, row_claim=claim.id,
                                            task_suffix=f"@{site}")
        decisions = {o.decision for o in per_site.values()}
        decision = (Decision.REFUTED if Decision.REFUTED in decisions else
                    Decision.HOLDS if decisions == {Decision.HOLDS} else Decision.INCONCLUSIVE)
        transition = None
        if claim.transition is not None:
            transition = self.transition(claim, {site: o.decision for site, o in per_site.items()})
            decision = Decision(transition["decision"])
        counts = Tally(sum(o.k for o in per_site.values()), sum(o.n for o in per_site.values()),
                       sum(o.abstained for o in per_site.values()))
        sweep = {}
        for site, o in per_site.items():
            ci = o.interval or o.plain
            sweep[site] = {"k": o.k, "n": o.n, "low": ci.low, "high": ci.high, "decision": o.decision.value,
                           "wilson_low": o.plain.low, "wilson_high": o.plain.high, "budget": o.plan["budget"],
                           "power": o.plan["power"], "note": o.note}
        plans = [o.plan for o in per_site.values()]
        power = 1.0
        for p in plans:
            power *= p["power"]
        plan = {**plans[0], "budget": sum(p["budget"] for p in plans), "power": power,
                "reached": all(p["reached"] for p in plans), "sites": len(sites)}
        notes = sorted({o.note for o in per_site.values() if o.note})
        rows = [r for o in per_site.values() for r in o.rows]
        return ClaimOutcome(claim, decision, counts.k, counts.n, counts.abstained, plain_interval(counts), plan=plan,
                            rows=rows, sweep=sweep, note="; ".join(notes), transition=transition)

    def transition_at(self, claim: Claim, sites: list[str]) -> int:
        """The index in ``sites`` (the sweep's, on this model) of the claim's transition site, mapped like
        the sweep's own parameter (a cutoff as a cutoff: the paper's binding cutoff is the block after an
        organism's binding block); ``len(sites)`` for the position past the last site."""
        e, t = claim.experiment, claim.transition
        mapped = self.site(t.at, claim.family, cutoff=e.get("sweep") == "cutoff")
        if mapped in sites:
            return sites.index(mapped)
        every = ["embed", *(s.name for s in self.model.table.blocks)]
        if every.index(mapped) == every.index(sites[-1]) + 1:
            return len(sites)
        raise ClaimSkipped(f"claim {claim.id!r}: its transition site {t.at} ({mapped} on {self.model.model_id!r}) "
                           f"is not in its sweep {sites[0]}..{sites[-1]}")

    def transition(self, claim: Claim, decisions: dict[str, Decision]) -> dict:
        """Decide a transition claim from its sweep's per-site decisions (in sweep order), by the rule of
        :mod:`mechinterp.stats.transition`: the claimed window (``at`` mapped to this model ± ``within``),
        the crossing the decisions locate, and the decision, as plain data for the report."""
        from mechinterp.stats.transition import decide_transition, locate, window

        sites, t = list(decisions), claim.transition
        at = self.transition_at(claim, sites)
        claimed = window(at, t.within, len(sites))
        located = locate(list(decisions.values()), t.holds)
        return transition_record(sites, at, claimed, located, t, decide_transition(located, claimed))

    def _run_relation(self, claim: Claim, registry: dict[str, Claim]) -> ClaimOutcome:
        """Decide ``a - b`` with the relation's own sequential test, after each cell is decided (and recorded)
        on its own: paired by task (:meth:`_run_paired`) or, for an unpaired relation, on two independent
        arms (:meth:`_run_unpaired`)."""
        missing = [c for c in (claim.a, claim.b) if c not in registry]
        if missing:
            raise ClaimSkipped(f"relation {claim.id!r} refers to unknown claims {missing}")
        a, b = registry[claim.a], registry[claim.b]
        ra, rb = self.runner_for(a.family), self.runner_for(b.family)
        ra.run(a, registry), rb.run(b, registry)
        items_a, items_b = ra.items(a), rb.items(b)
        in_b = {item_id(it) for it in items_b}
        shared = [it for it in items_a if item_id(it) in in_b]
        if claim.unpaired:
            if shared:
                raise ClaimSkipped(f"relation {claim.id!r} is unpaired, but on this model its cells {a.id!r} and "
                                   f"{b.id!r} draw the same tasks ({len(shared)} shared): its arms would not be "
                                   f"independent")
            return self._run_unpaired(claim, registry, (ra, a, items_a), (rb, b, items_b))
        if not shared:
            raise ClaimSkipped(f"relation {claim.id!r}: its cells {a.id!r} and {b.id!r} share no tasks to pair")
        return self._run_paired(claim, registry, (ra, a), (rb, b), shared)

    def _relation_rows(self, claim: Claim, arms) -> list[VerdictRow]:
        """The relation's own verdict rows: each arm's judged rows under the relation's id, task ids
        suffixed ``|a`` / ``|b``."""
        return [replace(j.row, claim_id=claim.id, task_id=j.row.task_id + suffix)
                for arm, suffix in zip(arms, ARM_SUFFIX) for j in arm]

    def _run_paired(self, claim: Claim, registry: dict[str, Claim], arm_a, arm_b, items: list) -> ClaimOutcome:
        """``a - b`` on the tasks both cells draw, paired by task."""
        (ra, a), (rb, b) = arm_a, arm_b
        plan = self.plan(claim, registry, len(items))
        if not plan.decidable:
            return ClaimOutcome(claim, Decision.INCONCLUSIVE, 0, 0, 0, plain_interval(PairTally()), plan=plan_record(plan),
                                k2=0, n2=0, pairs=PairTally(), note=self._undecidable(claim, plan))
        items = items[:plan.cap]  # pairs with an abstaining arm are replaced by later ones, up to the cap
        rows: list[VerdictRow] = []
        drawn = [0]

        def draw(m: int) -> list[tuple[bool | None, bool | None]]:
            batch = items[drawn[0]:drawn[0] + m]
            drawn[0] += len(batch)
            xs, ys = ra.judged(a, batch), rb.judged(b, batch)
            rows.extend(self._relation_rows(claim, (xs, ys)))
            return [(x.outcome, y.outcome) for x, y in zip(xs, ys)]

        test, seen = run_sequential(plan.design, draw)
        pairs = PairTally.of(seen)
        ta, tb = Tally.of(x for x, _ in seen), Tally.of(y for _, y in seen)
        return ClaimOutcome(claim, test.decision, ta.k, ta.n, pairs.abstained, plain_interval(pairs), test.last.interval,
                            test.last.worst_case, plan_record(plan), rows, [look.n for look in test.history], tb.k, tb.n,
                            pairs)

    def _run_unpaired(self, claim: Claim, registry: dict[str, Claim], arm_a, arm_b) -> ClaimOutcome:
        """``a - b`` on two independent arms: each draws its own tasks in its own sampling order on its own
        runner (its cell's model), up to the plan's cap per arm, and replaces its own abstentions."""
        arms = (arm_a, arm_b)
        plan = self.plan(claim, registry, min(len(arm_a[2]), len(arm_b[2])))
        if not plan.decidable:
            return ClaimOutcome(claim, Decision.INCONCLUSIVE, 0, 0, 0, plain_interval(ArmsTally()), plan=plan_record(plan),
                                k2=0, n2=0, arms=ArmsTally(), note=self._undecidable(claim, plan))
        judged: tuple[list[Judged], list[Judged]] = ([], [])

        def draw(want: tuple[int, int]) -> tuple[list, list]:
            out = []
            for (runner, cell, items), done, m in zip(arms, judged, want):
                got = runner.judged(cell, items[len(done):min(len(done) + m, plan.cap)])
                done.extend(got)
                out.append([j.outcome for j in got])
            return out[0], out[1]

        test, seen = run_sequential(plan.design, draw)
        counts = ArmsTally.of(seen)
        used = [arm[:len(outcomes)] for arm, outcomes in zip(judged, seen)]  # what the last look decided on
        return ClaimOutcome(claim, test.decision, counts.a.k, counts.a.n, counts.abstained, plain_interval(counts),
                            test.last.interval, test.last.worst_case, plan_record(plan), self._relation_rows(claim, used),
                            [look.n for look in test.history], counts.b.k, counts.b.n, arms=counts)
