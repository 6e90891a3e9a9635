"""An objective identity judge for the glyph family (``mechinterp.tasks.glyph``): pixels, no API at all.

It answers every ``*.identity`` question with the same ids, image roles and polarity as the
Claude judge, on models where the glyph family stands for ``human`` (the identity organisms), so
a human-identity claim is decided offline. The glyph plays the person: "the same individual"
is "the same glyph".

Reading an image (:func:`read_glyph`):

1. The image is converted to CIELAB; the background is the median colour of a 6 % border frame.
2. The square = rows and columns where at least half the pixels are farther than
   ``BACKGROUND_DE`` from the background; its bounding box must be at least ``MIN_SIDE_PX`` a
   side, square within ``ASPECT_TOLERANCE``, at least ``MIN_FILL`` of it foreground, and clear of the
   border frame (a square on a background, not a filled canvas).
   Otherwise the image shows *no square*.
3. The box is cut into the 4×4 cell grid; each cell's colour is the median Lab of its central
   half. A cell within ``CELL_DE`` of the on (off) colour and nearer it reads 1 (0); any other
   cell is *unreadable* (``None``).

Comparing (:func:`agreement`): the cells of an output that equal a reference's (an unreadable
cell never does). With ``SAME_CELLS`` or more of 16 the output shows *the same* glyph; with
``DIFFERENT_CELLS`` or fewer a *different* one (two random glyphs agree on 8 on average; 14 or more
by chance has probability 0.2 %); in between it is ambiguous and the judge abstains. An output
with no square shows no glyph: a different one.

Questions (abstaining whenever a reference shows no square or an unreadable cell):

- ``lens*.identity`` ("a DIFFERENT individual from Image 1?"): pass if the lens output shows a
  different glyph from the reference, fail if the same.
- ``ko_text*.identity`` ("LOST the identity?"): pass if the knockout output shows a different
  glyph, fail if the same. ``ko_image.identity`` / ``refdrop.identity`` ("STILL the same?"): the
  reverse. Both abstain when the I2I baseline does not show the reference's glyph (nothing to lose).
- ``patching*.identity`` ("more like person A than person B?"): pass if the patched output agrees
  with the source glyph on at least ``MARGIN_CELLS`` more cells than with the target's, fail if
  with the target's by that margin, abstain in between and when the two references are fewer
  than ``MARGIN_CELLS`` cells apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab

from mechinterp.judges.base import PixelJudge
from mechinterp.judges.images import as_rgb, memo_by_pixels
from mechinterp.judges.questions import Question
from mechinterp.tasks.glyph import OFF_RGB, ON_RGB, SIDE

BACKGROUND_DE = 10.0
CELL_DE = 20.0
BORDER_FRACTION = 0.06
MIN_SIDE_PX = 8
ASPECT_TOLERANCE = 0.25
MIN_FILL = 0.8
SAME_CELLS = 14
DIFFERENT_CELLS = 11
MARGIN_CELLS = 2
N_CELLS = SIDE * SIDE

_ON_LAB = rgb2lab(np.array([[ON_RGB]], float) / 255.0)[0, 0]
_OFF_LAB = rgb2lab(np.array([[OFF_RGB]], float) / 255.0)[0, 0]


@dataclass(frozen=True)
class Reading:
    """What an image shows: its 16 cells (1, 0 or ``None`` = unreadable), or ``cells=None``: no square."""

    cells: tuple[int | None, ...] | None
    why: str = ""

    @property
    def complete(self) -> bool:
        """A square with every cell readable (what a reference must show to be compared against)."""
        return self.cells is not None and None not in self.cells


def _lab(image: Image.Image) -> np.ndarray:
    return rgb2lab(np.asarray(as_rgb(image), dtype=np.float64) / 255.0)


def _runs(profile: np.ndarray) -> tuple[int, int] | None:
    """First and last index (inclusive) where ``profile`` is true, or ``None``."""
    idx = np.flatnonzero(profile)
    return (int(idx[0]), int(idx[-1])) if len(idx) else None


@memo_by_pixels
def read_glyph(image: Image.Image) -> Reading:
    """Locate the glyph square in ``image`` and read its cells (rule in the module doc; memoised by pixels, since
    references and baselines recur across a claim's bundles)."""
    lab = _lab(image)
    h, w, _ = lab.shape
    bh, bw = max(1, round(h * BORDER_FRACTION)), max(1, round(w * BORDER_FRACTION))
    frame = np.ones((h, w), bool)
    frame[bh:h - bh, bw:w - bw] = False
    border = np.median(lab[frame], axis=0)
    fg = deltaE_ciede2000(lab, np.broadcast_to(border, lab.shape)) > BACKGROUND_DE
    rows, cols = _runs(fg.mean(axis=1) >= 0.5), _runs(fg.mean(axis=0) >= 0.5)
    if rows is None or cols is None:
        return Reading(None, "no square")
    (top, bottom), (left, right) = rows, cols
    sh, sw = bottom - top + 1, right - left + 1
    if top < bh or left < bw or bottom >= h - bh or right >= w - bw:
        return Reading(None, f"no square (the foreground box {sw}x{sh} px reaches the border)")
    if min(sh, sw) < MIN_SIDE_PX or abs(sh - sw) > ASPECT_TOLERANCE * max(sh, sw):
        return Reading(None, f"no square (foreground box {sw}x{sh} px)")
    if fg[top:bottom + 1, left:right + 1].mean() < MIN_FILL:
        return Reading(None, f"no square (box {sw}x{sh} px only {fg[top:bottom + 1, left:right + 1].mean():.0%} filled)")
    cells: list[int | None] = []
    for i in range(N_CELLS):
        r, c = divmod(i, SIDE)
        y0, y1 = top + sh * r / SIDE, top + sh * (r + 1) / SIDE
        x0, x1 = left + sw * c / SIDE, left + sw * (c + 1) / SIDE
        qy, qx = (y1 - y0) / 4, (x1 - x0) / 4  # central half of the cell
        patch = lab[int(round(y0 + qy)):max(int(round(y1 - qy)), int(round(y0 + qy)) + 1),
                    int(round(x0 + qx)):max(int(round(x1 - qx)), int(round(x0 + qx)) + 1)]
        colour = np.median(patch.reshape(-1, 3), axis=0)
        d_on, d_off = (float(deltaE_ciede2000(colour, ref)) for ref in (_ON_LAB, _OFF_LAB))
        cells.append(1 if d_on <= CELL_DE and d_on < d_off else 0 if d_off <= CELL_DE and d_off < d_on else None)
    unread = sum(c is None for c in cells)
    return Reading(tuple(cells), f"{unread} unreadable cell(s)" if unread else "")


def agreement(output: Reading, reference: Reading) -> int:
    """Cells of ``output`` equal to ``reference``'s (0 when the output shows no square)."""
    if output.cells is None or reference.cells is None:
        return 0
    return sum(o is not None and o == r for o, r in zip(output.cells, reference.cells))


def same_glyph(output: Reading, reference: Reading) -> bool | None:
    """True = the same glyph, False = a different one (or none), None = ambiguous."""
    a = agreement(output, reference)
    return True if a >= SAME_CELLS else False if a <= DIFFERENT_CELLS else None


class GlyphJudge(PixelJudge):
    """Decides ``*.identity`` questions on glyph bundles from pixels (rule and thresholds in the module doc)."""

    name = "glyph"
    model = (f"glyph-grid-v1(same>={SAME_CELLS},different<={DIFFERENT_CELLS},margin={MARGIN_CELLS},"
             f"cell<={CELL_DE:g},bg>{BACKGROUND_DE:g})")

    family = "identity"

    def decide(self, question: Question, images: tuple[Image.Image, ...]) -> tuple[bool | None, str]:
        """``(passed, reason)`` for one identity bundle."""
        if question.experiment == "patching":
            source, target, out = read_glyph(images[0]), read_glyph(images[1]), read_glyph(images[3])
            if not (source.complete and target.complete):
                return None, f"a reference shows no readable glyph (source: {source.why or 'ok'}, target: {target.why or 'ok'})"
            apart = N_CELLS - agreement(source, target)
            a_src, a_tgt = agreement(out, source), agreement(out, target)
            why = f"output agrees with source on {a_src}/16 cells, target on {a_tgt}/16"
            if apart < MARGIN_CELLS:
                return None, f"source and target glyphs are {apart} cell(s) apart; {why}"
            if out.cells is None:
                return False, f"output shows no glyph ({out.why})"
            if a_src - a_tgt >= MARGIN_CELLS:
                return True, f"more like the source glyph: {why}"
            if a_tgt - a_src >= MARGIN_CELLS:
                return False, f"more like the target glyph: {why}"
            return None, f"ambiguous: {why}"
        ref = read_glyph(images[0])
        if not ref.complete:
            return None, f"the reference shows no readable glyph ({ref.why})"
        out = read_glyph(images[2])
        same = same_glyph(out, ref)
        why = f"output agrees with the reference on {agreement(out, ref)}/16 cells" + (f" ({out.why})" if out.why else "")
        if question.experiment == "lens":  # "a DIFFERENT individual?"
            return (None if same is None else not same), f"{'ambiguous' if same is None else 'same glyph' if same else 'different glyph'}; {why}"
        base = read_glyph(images[1])
        if same_glyph(base, ref) is not True:
            return None, f"baseline does not show the reference glyph ({agreement(base, ref)}/16 cells); {why}"
        if same is None:
            return None, f"ambiguous; {why}"
        if question.experiment in ("ko_image", "refdrop"):  # "still the same?" questions
            return same, f"glyph {'kept' if same else 'lost'}; {why}"
        return (not same), f"glyph {'kept' if same else 'lost'}; {why}"
