"""Sweep plots for the HTML report: a claim's rate per site with its interval band (matplotlib, embedded PNG)."""

from __future__ import annotations

import base64
import io
import textwrap


def crossing_x(sites: list[str], site: str) -> float:
    """Where a crossing *before* ``site`` (``"end"``: past the last site) lies on the plot's x axis:
    halfway between it and the site before."""
    return (len(sites) if site == "end" else sites.index(site)) - 0.5


def sweep_plot(sweep: dict[str, dict], title: str = "", threshold: float | None = None,
               transition: dict | None = None) -> str:
    """A ``data:image/png`` URI: rate (dots, line) and 95 % interval (band) at each site of a sweep, in order.

    ``transition`` (a transition claim's record: ``at``, ``claimed`` window, ``located`` span, as site
    names) marks the claimed crossing (dashed line, its ± window shaded) and the measured one (the span
    the per-site decisions locate, solid)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    sites = list(sweep)
    rates = [(s["k"] / s["n"]) if s["n"] else float("nan") for s in sweep.values()]
    lows = [s["low"] for s in sweep.values()]
    highs = [s["high"] for s in sweep.values()]
    width = max(4.0, 0.45 * len(sites) + 2)
    title = "\n".join(textwrap.wrap(title, width=int(width * 12), break_on_hyphens=False, break_long_words=False))  # ~12 chars/inch at 9 pt
    fig, ax = plt.subplots(figsize=(width, 2.8 + 0.15 * title.count("\n")), dpi=100)
    x = list(range(len(sites)))
    ax.fill_between(x, lows, highs, alpha=0.25, color="#0969da", label="95% interval")
    ax.plot(x, rates, "o-", color="#0969da", label="rate")
    if threshold is not None:
        ax.axhline(threshold, color="#cf222e", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    if transition is not None:
        lo, hi = (crossing_x(sites, s) for s in transition["claimed"])
        ax.axvspan(lo - 0.04, hi + 0.04, color="#1a7f37", alpha=0.12, label="claimed window")
        ax.axvline(crossing_x(sites, transition["at"]), color="#1a7f37", linestyle="--", linewidth=1.2,
                   label=f"claimed crossing (before {transition['at']})")
        lo, hi = (crossing_x(sites, s) for s in transition["located"])
        ax.axvspan(lo - 0.06, hi + 0.06, color="#8250df", alpha=0.35, label="measured crossing")
    ax.set_xticks(x, sites, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("rate")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
