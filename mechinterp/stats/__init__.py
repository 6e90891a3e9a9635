"""Honest statistics for pooled judge verdicts.

* :func:`wilson` / :func:`newcombe`: 95% Wilson score interval of a rate (scipy) and the
  Newcombe hybrid score interval of a difference of two rates.
* :class:`Hypothesis` and :class:`Decision`: a claim's hypothesis (``rate >= 0.80``,
  ``a - b > 0``, ``|a - b| <= 0.15``) decided as holds / refuted / inconclusive from an
  interval.
* :class:`SequentialTest`: stop sampling once a decision is settled, with alpha spending
  over a fixed look schedule (error control documented in :mod:`mechinterp.stats.sequential`).
"""

from mechinterp.stats.hypothesis import Decision, Hypothesis
from mechinterp.stats.intervals import CONFIDENCE, Interval, newcombe, wilson
from mechinterp.stats.sequential import (
    SPENDING,
    SequentialTest,
    alpha_spent,
    run_sequential,
    sampling_order,
)


def decide(hypothesis: Hypothesis | str, k: int, n: int, k2: int | None = None, n2: int | None = None,
           confidence: float = CONFIDENCE) -> tuple[Decision, Interval]:
    """Decide a hypothesis from pooled counts; returns the decision and the interval used.

    Threshold hypotheses take ``(k, n)``; comparisons take both arms ``(k, n, k2, n2)`` and
    are decided on the Newcombe interval of ``k/n - k2/n2``.
    """
    h = Hypothesis.parse(hypothesis) if isinstance(hypothesis, str) else hypothesis
    if h.is_comparison:
        if k2 is None or n2 is None:
            raise ValueError(f"comparison hypothesis {h} needs both arms: k, n, k2, n2")
        ci = newcombe(k, n, k2, n2, confidence)
    else:
        if k2 is not None or n2 is not None:
            raise ValueError(f"threshold hypothesis {h} takes one arm (k, n), got a second arm")
        ci = wilson(k, n, confidence)
    return h.decide(ci), ci


__all__ = [
    "CONFIDENCE", "Decision", "Hypothesis", "Interval", "SPENDING", "SequentialTest",
    "alpha_spent", "decide", "newcombe", "run_sequential", "sampling_order", "wilson",
]
