"""An objective colour judge: CIELAB and CIEDE2000 instead of a VLM, no API at all.

It answers every ``*.color`` question with the same ids, image roles and polarity as the
Claude judge, so a colour claim can be decided offline and the two judges compared (κ).

Rule (all distances are ΔE2000, scikit-image's ``deltaE_ciede2000``):

1. Every image is shrunk to at most 96 px on a side and converted to CIELAB.
2. Reference colour = median Lab of the (solid) reference image.
3. Object region of a generated image = pixels farther than ``BACKGROUND_DE`` from the
   border colour (median Lab of a 6% frame). Fewer than ``MIN_OBJECT_FRACTION`` of the pixels
   means no separable object (e.g. the whole canvas took the colour): the whole image is used.
4. Dominant colour = Lab centroid of the largest of 3 k-means clusters of the object region.
5. An image *shows* the reference colour when its dominant colour is within ``PRESENT_DE``,
   *lacks* it beyond ``ABSENT_DE``; in between it is ambiguous and the judge abstains.
   (The closest pair of the paper's eight reference colours, blue/purple, is ΔE 19 apart.)

Questions:

- ``lens.color``: pass if the lens output shows the colour and the T2I baseline lacks it;
  fail if the output lacks it, or the baseline already showed it; abstain otherwise.
- ``ko_text*.color`` ("lost?"): pass if the knockout output lacks the colour, fail if it
  shows it. ``ko_image.color`` ("still shows?"): the reverse. Both abstain when the I2I
  baseline does not show the colour itself (nothing to lose) or the output is ambiguous.
- ``patch.color``: pass if the patched output's colour is nearer the source reference than
  the target's by at least ``MARGIN_DE``, fail if nearer the target by that margin, abstain
  otherwise (including when the two references are within ``MARGIN_DE`` of each other).
"""

from __future__ import annotations


import numpy as np
from PIL import Image
from scipy.cluster.vq import kmeans2
from skimage.color import deltaE_ciede2000, rgb2lab

from mechinterp.judges.base import PixelJudge
from mechinterp.judges.images import as_rgb, memo_by_pixels
from mechinterp.judges.questions import Question

PRESENT_DE = 15.0
ABSENT_DE = 25.0
MARGIN_DE = 5.0
BACKGROUND_DE = 10.0
MIN_OBJECT_FRACTION = 0.01
BORDER_FRACTION = 0.06
WORK_SIZE = 96
CLUSTERS = 3


def lab_pixels(image: Image.Image) -> np.ndarray:
    """The image, shrunk to at most WORK_SIZE px a side, as an ``(h, w, 3)`` Lab array."""
    rgb = as_rgb(image)
    rgb = rgb.copy()
    rgb.thumbnail((WORK_SIZE, WORK_SIZE), Image.BILINEAR)
    return rgb2lab(np.asarray(rgb, dtype=np.float64) / 255.0)


@memo_by_pixels
def reference_color(image: Image.Image) -> np.ndarray:
    """Median Lab colour of a (solid) reference image (memoised by pixels: references recur in every bundle)."""
    return np.median(lab_pixels(image).reshape(-1, 3), axis=0)


def object_mask(lab: np.ndarray) -> np.ndarray:
    """Pixels that differ from the border colour by more than BACKGROUND_DE (all pixels when
    fewer than MIN_OBJECT_FRACTION do)."""
    h, w, _ = lab.shape
    bh, bw = max(1, round(h * BORDER_FRACTION)), max(1, round(w * BORDER_FRACTION))
    frame = np.ones((h, w), bool)
    frame[bh:h - bh, bw:w - bw] = False
    border = np.median(lab[frame], axis=0)
    mask = deltaE_ciede2000(lab, np.broadcast_to(border, lab.shape)) > BACKGROUND_DE
    return mask if mask.mean() >= MIN_OBJECT_FRACTION else np.ones((h, w), bool)


@memo_by_pixels
def dominant_color(image: Image.Image) -> np.ndarray:
    """Lab centroid of the largest k-means cluster of the object region (deterministic; memoised by pixels,
    since baselines recur across a claim's bundles)."""
    lab = lab_pixels(image)
    pixels = lab[object_mask(lab)]
    if len(pixels) < CLUSTERS * 4 or np.ptp(pixels, axis=0).max() < 1e-6:
        return np.median(pixels, axis=0)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    if len(colours) <= CLUSTERS:  # what k-means would find, without its empty-cluster warnings
        return colours[int(np.argmax(counts))]
    centroids, labels = kmeans2(pixels, CLUSTERS, minit="++", seed=0)
    counts = np.bincount(labels, minlength=CLUSTERS)
    return centroids[int(np.argmax(counts))]


def color_distance(a: np.ndarray, b: np.ndarray) -> float:
    """ΔE2000 between two Lab colours."""
    return float(deltaE_ciede2000(np.asarray(a, float), np.asarray(b, float)))


def _shows(distance: float) -> bool | None:
    """True = shows the colour, False = lacks it, None = ambiguous."""
    if distance <= PRESENT_DE:
        return True
    if distance >= ABSENT_DE:
        return False
    return None


class ColorJudge(PixelJudge):
    """Decides ``*.color`` questions from pixels (rule and thresholds in the module doc)."""

    name = "color"
    model = (f"cielab-de2000-v1(present<={PRESENT_DE:g},absent>={ABSENT_DE:g},"
             f"margin={MARGIN_DE:g},bg>{BACKGROUND_DE:g})")

    family = "color"

    def decide(self, question: Question,
               images: tuple[Image.Image, ...]) -> tuple[bool | None, str]:
        """``(passed, reason)`` for one colour bundle."""
        if question.experiment == "patching":
            source, target = reference_color(images[0]), reference_color(images[1])
            out = dominant_color(images[3])
            d_src, d_tgt = color_distance(out, source), color_distance(out, target)
            why = f"output ΔE {d_src:.1f} to source, {d_tgt:.1f} to target"
            if color_distance(source, target) < MARGIN_DE:
                return None, f"source and target colours are indistinguishable; {why}"
            if d_src + MARGIN_DE <= d_tgt:
                return True, f"nearer the source colour: {why}"
            if d_tgt + MARGIN_DE <= d_src:
                return False, f"nearer the target colour: {why}"
            return None, f"ambiguous: {why}"
        ref = reference_color(images[0])
        d_base = color_distance(dominant_color(images[1]), ref)
        d_out = color_distance(dominant_color(images[2]), ref)
        base, out = _shows(d_base), _shows(d_out)
        why = f"ΔE to reference: baseline {d_base:.1f}, output {d_out:.1f}"
        if question.experiment == "lens":
            if out is False:
                return False, f"output lacks the reference colour; {why}"
            if out is True and base is False:
                return True, f"output shows the colour, baseline does not; {why}"
            if out is True and base is True:
                return False, f"baseline already shows the colour; {why}"
            return None, f"ambiguous; {why}"
        if base is not True:
            return None, f"baseline does not show the reference colour; {why}"
        if out is None:
            return None, f"ambiguous; {why}"
        lost = out is False
        if question.experiment in ("ko_image", "refdrop"):  # "still preserved?" questions
            return (not lost), f"colour {'lost' if lost else 'kept'}; {why}"
        return lost, f"colour {'lost' if lost else 'kept'}; {why}"
