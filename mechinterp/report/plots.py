"""Sweep plots for the HTML report: a claim's rate per site with its interval band, as a small SVG.

The SVG is written by hand (no plotting library): a sweep plot is a handful of lines, dots and
labels, and drawing it with matplotlib cost about a second of import and a third of a second a plot,
a few per cent of the main job. It is embedded as a ``data:image/svg+xml`` image, so the page stays
self-contained, and an SVG inside ``<img>`` runs no script; every text in it is XML-escaped.
"""

from __future__ import annotations

import base64
import math
import textwrap
from xml.sax.saxutils import escape, quoteattr

BLUE, RED, GREEN, PURPLE, GREY = "#0969da", "#cf222e", "#1a7f37", "#8250df", "#57606a"
STEP = 34        #: px between sites on the x axis
PLOT_H = 150     #: px of the rate axis (0 to 1)
LEFT, RIGHT, TOP_PAD = 46, 16, 10
LINE_H = 14      #: px of one line of title or legend text
TITLE_CHARS = 12  #: title characters per 100 px of width (about 9 px text)


def crossing_x(sites: list[str], site: str) -> float:
    """Where a crossing *before* ``site`` (``"end"``: past the last site) lies on the plot's x axis:
    halfway between it and the site before."""
    return (len(sites) if site == "end" else sites.index(site)) - 0.5


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


class _Frame:
    """Site index and rate to SVG coordinates."""

    def __init__(self, n_sites: int, top: float):
        self.n, self.top = n_sites, top

    def x(self, i: float) -> float:
        return LEFT + (i + 0.5) * STEP

    def y(self, rate: float) -> float:
        return self.top + (1.0 - rate) * PLOT_H


def sweep_plot(sweep: dict[str, dict], title: str = "", threshold: float | None = None,
               transition: dict | None = None) -> str:
    """A ``data:image/svg+xml`` URI: rate (dots, line) and 95 % interval (band) at each site of a sweep, in order.

    ``threshold`` draws the claim's bound (dashed, red). ``transition`` (a transition claim's record: ``at``,
    ``claimed`` window, ``located`` span, as site names) marks the claimed crossing (dashed line, its ± window
    shaded) and the measured one (the span the per-site decisions locate, shaded)."""
    return "data:image/svg+xml;base64," + base64.b64encode(sweep_svg(sweep, title, threshold, transition).encode()).decode()


def sweep_svg(sweep: dict[str, dict], title: str = "", threshold: float | None = None,
              transition: dict | None = None) -> str:
    """The SVG document behind :func:`sweep_plot` (elements carry ``class`` names: ``band``, ``rate``,
    ``dot``, ``threshold``, ``claimed-window``, ``claimed``, ``measured``, ``site``)."""
    sites = list(sweep)
    longest = max((len(w) for w in title.split()), default=0)  # a claim id is one unbreakable word
    width = max(LEFT + RIGHT + STEP * max(len(sites), 4), math.ceil(longest * 100 / TITLE_CHARS) + 20)
    lines = textwrap.wrap(title, width=max(20, width * TITLE_CHARS // 100), break_on_hyphens=False,
                          break_long_words=False) if title else []
    legend = [("band", BLUE, "95% interval"), ("rate", BLUE, "rate")]
    if threshold is not None:
        legend.append(("threshold", RED, f"threshold {threshold:g}"))
    if transition is not None:
        legend += [("claimed", GREEN, f"claimed crossing (before {transition['at']})"), ("measured", PURPLE, "measured crossing")]
    top = TOP_PAD + LINE_H * len(lines) + 6
    frame = _Frame(len(sites), top)
    label_h = 8 + 6 * max((len(s) for s in sites), default=1)  # rotated site names
    legend_top = top + PLOT_H + label_h
    height = legend_top + LINE_H * len(legend) + 6
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{_num(height)}" '
           f'viewBox="0 0 {width} {_num(height)}" font-family="sans-serif" font-size="10">',
           f'<rect width="{width}" height="{_num(height)}" fill="#ffffff"/>']
    for i, line in enumerate(lines):
        out.append(f'<text class="title" x="{width / 2:.1f}" y="{TOP_PAD + LINE_H * (i + 1) - 3}" '
                   f'text-anchor="middle" font-size="11">{escape(line)}</text>')
    x0, x1 = frame.x(-0.5), frame.x(len(sites) - 0.5)
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):  # axis, grid and labels
        y = frame.y(tick)
        out.append(f'<line x1="{x0:.1f}" y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}" stroke="#d0d7de" stroke-width="0.5"/>')
        out.append(f'<text x="{x0 - 4:.1f}" y="{y + 3:.1f}" text-anchor="end" fill="{GREY}">{tick:g}</text>')
    out.append(f'<text x="12" y="{frame.y(0.5):.1f}" transform="rotate(-90 12 {frame.y(0.5):.1f})" '
               f'text-anchor="middle" fill="{GREY}">rate</text>')
    if transition is not None:
        lo, hi = (frame.x(crossing_x(sites, s)) for s in transition["claimed"])
        out.append(_span("claimed-window", lo - 2, hi + 2, frame, GREEN, 0.12))
        lo, hi = (frame.x(crossing_x(sites, s)) for s in transition["located"])
        out.append(_span("measured", lo - 3, hi + 3, frame, PURPLE, 0.35))
        at = frame.x(crossing_x(sites, transition["at"]))
        out.append(f'<line class="claimed" x1="{at:.1f}" y1="{frame.y(1):.1f}" x2="{at:.1f}" y2="{frame.y(0):.1f}" '
                   f'stroke="{GREEN}" stroke-width="1.2" stroke-dasharray="4 3"/>')
    known = [(i, s) for i, s in enumerate(sweep.values()) if s.get("n")]
    if known:
        upper = " ".join(f"{frame.x(i):.1f},{frame.y(s['high']):.1f}" for i, s in known)
        lower = " ".join(f"{frame.x(i):.1f},{frame.y(s['low']):.1f}" for i, s in reversed(known))
        out.append(f'<polygon class="band" points="{upper} {lower}" fill="{BLUE}" fill-opacity="0.25"/>')
        rates = [(i, s["k"] / s["n"]) for i, s in known]
        out.append(f'<polyline class="rate" points="{" ".join(f"{frame.x(i):.1f},{frame.y(r):.1f}" for i, r in rates)}" '
                   f'fill="none" stroke="{BLUE}" stroke-width="1.5"/>')
        for (i, r), (_, s) in zip(rates, known):
            out.append(f'<circle class="dot" cx="{frame.x(i):.1f}" cy="{frame.y(r):.1f}" r="3" fill="{BLUE}">'
                       f'<title>{escape(sites[i])}: {int(s["k"])} / {int(s["n"])}</title></circle>')
    if threshold is not None and math.isfinite(threshold):
        y = frame.y(threshold)
        out.append(f'<line class="threshold" x1="{x0:.1f}" y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}" stroke="{RED}" '
                   f'stroke-width="1" stroke-dasharray="5 3"/>')
    for i, site in enumerate(sites):
        x, y = frame.x(i), frame.y(0) + 10
        out.append(f'<text class="site" x="{x:.1f}" y="{y:.1f}" transform="rotate(-60 {x:.1f} {y:.1f})" '
                   f'text-anchor="end" font-size="9">{escape(site)}</text>')
    for j, (kind, colour, label) in enumerate(legend):
        y = legend_top + LINE_H * j + 8
        swatch = (f'<rect x="{LEFT}" y="{y - 6}" width="14" height="8" fill="{colour}" fill-opacity="0.3"/>'
                  if kind in ("band", "measured") else
                  f'<line x1="{LEFT}" y1="{y - 2}" x2="{LEFT + 14}" y2="{y - 2}" stroke="{colour}" stroke-width="1.5"'
                  + ('' if kind == "rate" else ' stroke-dasharray="4 3"') + '/>')
        out.append(f'<g class="legend" data-kind={quoteattr(kind)}>{swatch}'
                   f'<text x="{LEFT + 20}" y="{y + 1}">{escape(label)}</text></g>')
    out.append("</svg>")
    return "\n".join(out)


def _span(kind: str, lo: float, hi: float, frame: _Frame, colour: str, opacity: float) -> str:
    return (f'<rect class="{kind}" x="{lo:.1f}" y="{frame.y(1):.1f}" width="{hi - lo:.1f}" height="{PLOT_H}" '
            f'fill="{colour}" fill-opacity="{opacity}"/>')
