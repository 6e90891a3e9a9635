"""Statistics that decide the paper's claims: sequential tests with planned power.

What is decided. A claim's hypothesis (``rate >= 0.80``, ``rate <= 0.05``, ``a - b > 0``,
``|a - b| <= 0.15``) comes out *holds*, *refuted* or *inconclusive*. At the threshold each
wrong decision — refuting a claim that is (just) true, holding one that is (just) false — has
probability at most ``ALPHA = 0.025``, one-sided: the paper's two-sided 95 % split into its two
directions. A claim that is true with a margin (its *design point*: by default the paper's own
rate, :mod:`mechinterp.claims.budget`) holds with probability at least ``POWER = 0.90``, by
choosing its budget (:mod:`mechinterp.stats.plan`) — within the tasks the paper's cell has.

The design chosen: a group-sequential test, two one-sided tests at ``ALPHA`` each (one for
*holds*, one for *refuted*), Lan–DeMets O'Brien–Fleming spending over four equally spaced looks,
with *exact* boundaries. For a rate they are computed on the binomial itself
(:mod:`~mechinterp.stats.binomial`: the count's distribution carried from look to look by
convolution), so the error at the threshold is the computed number, not an approximation; the
earlier rule — Wilson intervals at the spent level — inherited Wilson's coverage error and
refuted true ``rate <= 0.05`` claims 3.6 % of the time. A relation whose cells draw the same
tasks is *paired*: both arms run on the same tasks, the test is on the per-task difference
(Tango's score statistic), and its critical values are calibrated exactly over the nuisance
discordance (:mod:`~mechinterp.stats.paired`). A relation whose cells draw different tasks (Table
1's ordering: colour against human identity) is *unpaired*: each arm draws its own tasks, the
test is on the two independent rates (Newcombe's hybrid score interval), and its critical values
are calibrated exactly over the nuisance rate along the null boundary
(:mod:`~mechinterp.stats.unpaired`; both share :mod:`~mechinterp.stats.lattice`). Each look's
interval — Clopper–Pearson for a rate, Tango or Newcombe for a difference, each end at the look's
one-sided level — lies inside the claim exactly when the boundary is crossed, so the interval
printed is the one that decided (:mod:`~mechinterp.stats.sequential`); the plain 95 % Wilson (a
paired score interval or a Newcombe interval for a relation) is printed beside it for the tables.

Alternatives weighed.

* Wald's SPRT minimises the expected sample size at two chosen rates, but it is open-ended
  (truncating it to a budget breaks its simple error bounds), its "accept" is a β-level
  decision rather than an α-level refutation, and it assumes a look after every sample, while
  the suite judges in batches (the batch API prices and latency).
* Anytime-valid confidence sequences (betting, Waudby-Smith & Ramdas; Howard et al.) are valid
  under any stopping rule and, for bounded means, need no nuisance parameter — the natural fit
  for paired differences. But they pay for looks never taken: simulated, the predictable plug-in
  betting sequence needs 1.6–2.5 times this design's budget for the same 90 % power (1,017
  instead of 407 tasks for 82 % against ``rate >= 0.75``, more than the paper's 450; 163 instead
  of 102 for 92 % against 0.80), and its power has no exact recursion, only simulation. With
  four looks, the exact group-sequential design gives the same guarantee for fewer generations
  and exactly computable power.
* Binding futility (gsDesign/rpact's β-spending lower bound) lowers the efficacy bound a little,
  but its stop means "accept the null at β", which is not *refuted*: here the lower boundary is
  itself an α-level test. Each boundary is computed as if the other never stopped the test
  (non-binding): binding them changes none of the budgets (computed for the four hardest
  designs), while it would tie each error bound to the other boundary being obeyed.

The budget of a claim is its design's, capped by ``--samples`` (a cap, not a size) and by the
paper's cell; a claim whose cap leaves no outcome that could make it hold says so before it
generates anything. Abstentions follow one stated policy (:data:`ABSTENTIONS`). The error at
the threshold and the power are checked in ``tests/test_stats_*.py`` by exact recursion for the
designs the suite runs, and by replaying the authors' released verdicts through the runner's own
decision loop (``mechinterp power``).
"""

from __future__ import annotations

from mechinterp.stats.hypothesis import Decision, Hypothesis
from mechinterp.stats.intervals import CONFIDENCE, Interval, mover, newcombe, wilson
from mechinterp.stats.paired import PairTally, paired_interval
from mechinterp.stats.plan import POWER, Plan, plan_paired, plan_rate, plan_unpaired
from mechinterp.stats.sequential import (
    ALPHA, KINDS, LOOKS, TALLIES, Design, Look, OperatingCharacteristics, SequentialTest, Tally, design_kind,
    run_sequential, tally,
)
from mechinterp.stats.unpaired import ArmsTally, unpaired_interval
from mechinterp.stats.spending import SPENDING, alpha_spent

#: the design, as the reports state it
DESIGN = ("Each claim is a group-sequential test with four looks (Lan-DeMets O'Brien-Fleming spending) of two "
          "one-sided exact tests at 2.5 % each: at the threshold, refuting a true claim and holding a false one "
          "each happen at most 2.5 % of the time. A rate is decided on exact Clopper-Pearson bounds, a relation on "
          "both arms' outcomes paired by task (Tango's score interval, critical values calibrated exactly over the "
          "discordance), or, when its cells draw different tasks, on the two arms' independent rates (Newcombe's "
          "hybrid score interval, critical values calibrated exactly over the null boundary). 'Decided on' is the interval of the look that decided, each end at that look's level; "
          "'run' is the plain 95 % interval. A claim's budget is the smallest that decides it holds with 90 % "
          "probability when its true rate is the paper's (or a stated effect), within the paper's cell and "
          "--samples; 'power at its budget' is that probability.")
#: the abstention policy, as the reports state it
ABSTENTIONS = ("Abstentions are left out and replaced: a look falls when the planned number of answers is in, so "
               "a bundle the judge leaves open is counted and shown, and the next task in the order is drawn in "
               "its place (up to the claim's cap of tasks; if the tasks run out, the look at the answers there are "
               "is the last). An unpaired relation's arms each replace their own abstentions; if one arm's tasks run "
               "out, the last look takes as many answers of each arm as that arm has. The error control and the power are the design's as long as whether the judge "
               "abstains does not depend on the answer it would have given; every report shows the abstentions "
               "with the worst-case interval, which counts each of them against the claim at the end that could "
               "make it hold and for it at the other. The paper's judge never abstains; the objective colour judge "
               "does, in its grey zone between 'shows' and 'lacks'.")


def plain_interval(counts: Tally | PairTally | ArmsTally, confidence: float = CONFIDENCE) -> Interval:
    """The plain two-sided interval of the answered verdicts: Wilson for a rate, the paired score
    interval (Tango) for a paired difference, Newcombe's for an unpaired one — what the paper's
    tables print beside each value."""
    if isinstance(counts, PairTally):
        return paired_interval(counts, confidence)
    if isinstance(counts, ArmsTally):
        return unpaired_interval(counts, confidence)
    return wilson(counts.k, counts.n, confidence)


def decide(hypothesis: Hypothesis | str, counts: Tally | PairTally | ArmsTally,
           confidence: float = CONFIDENCE) -> tuple[Decision, Interval]:
    """Fixed-sample decision on pooled counts (no sequential looks) on the plain two-sided
    ``confidence`` interval of the answers (:func:`plain_interval`); returns the decision and it."""
    h = Hypothesis.parse(hypothesis) if isinstance(hypothesis, str) else hypothesis
    if h.is_comparison != isinstance(counts, (PairTally, ArmsTally)):
        need = "paired counts (a PairTally) or two arms' (an ArmsTally)" if h.is_comparison else "one arm's counts (a Tally)"
        raise ValueError(f"hypothesis {h} needs {need}, got {counts!r}")
    ci = plain_interval(counts, confidence)
    return h.decide(ci), ci


__all__ = [
    "ABSTENTIONS", "ALPHA", "ArmsTally", "CONFIDENCE", "DESIGN", "Decision", "Design", "Hypothesis", "Interval", "KINDS",
    "LOOKS", "Look", "OperatingCharacteristics", "POWER", "PairTally", "Plan", "SPENDING", "SequentialTest", "TALLIES",
    "Tally", "alpha_spent", "decide", "design_kind", "mover", "newcombe", "paired_interval", "plain_interval", "plan_paired", "plan_rate",
    "plan_unpaired", "run_sequential", "tally", "unpaired_interval", "wilson",
]
