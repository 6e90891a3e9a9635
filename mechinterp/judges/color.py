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


def _work_rgb(image: Image.Image) -> np.ndarray:
    """The image in RGB, shrunk to at most WORK_SIZE px a side, as an ``(h, w, 3)`` uint8 array. An image
    already that small is used as it is: ``thumbnail`` would leave it unchanged, so its copy is skipped."""
    rgb = as_rgb(image)
    if rgb.width > WORK_SIZE or rgb.height > WORK_SIZE:
        rgb = rgb.copy()
        rgb.thumbnail((WORK_SIZE, WORK_SIZE), Image.BILINEAR)
    return np.asarray(rgb)


def _lab_of(rgb: np.ndarray) -> np.ndarray:
    """CIELAB of a uint8 RGB array (uint8 -> float64 is exact, so this is ``rgb2lab`` of the float image)."""
    return rgb2lab(rgb.astype(np.float64) / 255.0)


def lab_pixels(image: Image.Image) -> np.ndarray:
    """The image, shrunk to at most WORK_SIZE px a side, as an ``(h, w, 3)`` Lab array."""
    return _lab_of(_work_rgb(image))


@memo_by_pixels
def reference_color(image: Image.Image) -> np.ndarray:
    """Median Lab colour of a (solid) reference image (memoised by pixels: references recur in every bundle)."""
    return np.median(lab_pixels(image).reshape(-1, 3), axis=0)


def _border_color(lab: np.ndarray) -> np.ndarray:
    """Median Lab of the image's frame (BORDER_FRACTION of each side): its background colour."""
    h, w, _ = lab.shape
    bh, bw = max(1, round(h * BORDER_FRACTION)), max(1, round(w * BORDER_FRACTION))
    frame = np.ones((h, w), bool)
    frame[bh:h - bh, bw:w - bw] = False
    return np.median(lab[frame], axis=0)


def _mask_or_all(mask: np.ndarray) -> np.ndarray:
    return mask if mask.mean() >= MIN_OBJECT_FRACTION else np.ones(mask.shape, bool)


def object_mask(lab: np.ndarray) -> np.ndarray:
    """Pixels that differ from the border colour by more than BACKGROUND_DE (all pixels when
    fewer than MIN_OBJECT_FRACTION do)."""
    border = _border_color(lab)
    return _mask_or_all(deltaE_ciede2000(lab, np.broadcast_to(border, lab.shape)) > BACKGROUND_DE)


def _distinct_pixels(rgb: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(colours, inverse)``: the Lab rows of the image's distinct RGB colours (one row per colour, taken
    from ``lab`` itself) and, per pixel, its colour's row, so that ``colours[inverse]`` is ``lab`` bit for bit.
    Why: a generated 64x64 image has some 50 distinct colours among its 4,096 pixels, so per-pixel
    arithmetic done per colour costs ~1/80. None when ``lab`` gives two pixels of one RGB colour different
    bits (it does not, but then nothing may be shared) or holds a signed zero or NaN, whose equalities
    np.unique treats differently from bits."""
    flat = np.ascontiguousarray(lab.reshape(-1, 3))
    if np.isnan(flat).any() or (np.signbit(flat) & (flat == 0)).any():
        return None
    px = rgb.reshape(-1, 3).astype(np.int32)
    codes = (px[:, 0] << 16) | (px[:, 1] << 8) | px[:, 2]
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    colours = flat[first]
    if not np.array_equal(colours[inverse].view(np.uint64), flat.view(np.uint64)):
        return None
    return colours, inverse.reshape(-1)


def _dominant_of(pixels: np.ndarray, distinct: np.ndarray | None = None,
                 counts: np.ndarray | None = None) -> np.ndarray:
    """Step 4 of the rule on the object's Lab ``pixels``: their median when they are too few or one colour,
    the most frequent colour when there are at most CLUSTERS of them, else the centroid of the largest
    k-means cluster. ``distinct``/``counts`` (optional) are the distinct rows of ``pixels`` in any order,
    possibly repeated, with their pixel counts: they stand in for ``np.unique(pixels, axis=0)`` over every
    pixel, whose answer they give exactly (np.unique of the few rows, counts summed per row)."""
    if len(pixels) < CLUSTERS * 4 or np.ptp(pixels, axis=0).max() < 1e-6:
        return np.median(pixels, axis=0)
    if distinct is None:
        colours, counts = np.unique(pixels, axis=0, return_counts=True)
    else:
        colours, groups = np.unique(distinct, axis=0, return_inverse=True)
        counts = np.bincount(groups.reshape(-1), weights=counts, minlength=len(colours))
    if len(colours) <= CLUSTERS:  # what k-means would find, without its empty-cluster warnings
        return colours[int(np.argmax(counts))]
    # Lab of uint8 RGB is always finite, so kmeans2's finiteness pass (a copy and a scan) is skipped
    centroids, labels = kmeans2(pixels, CLUSTERS, minit="++", seed=0, check_finite=False)
    counts = np.bincount(labels, minlength=CLUSTERS)
    return centroids[int(np.argmax(counts))]


@memo_by_pixels
def dominant_color(image: Image.Image) -> np.ndarray:
    """Lab centroid of the largest k-means cluster of the object region (deterministic; memoised by pixels,
    since baselines recur across a claim's bundles). The background distance is computed once per distinct
    colour rather than per pixel (same ΔE values: it is elementwise), and the few-colours test counts
    colours rather than sorting every pixel; the k-means still sees every object pixel in order."""
    rgb = _work_rgb(image)
    lab = _lab_of(rgb)
    shared = _distinct_pixels(rgb, lab)
    if shared is None:
        return _dominant_of(lab[object_mask(lab)])
    colours, inverse = shared
    border = _border_color(lab)
    near = deltaE_ciede2000(colours, np.broadcast_to(border, colours.shape)) > BACKGROUND_DE
    mask = _mask_or_all(near[inverse].reshape(lab.shape[:2]))
    pixels = lab[mask]
    in_object = np.bincount(inverse[mask.reshape(-1)], minlength=len(colours))
    kept = in_object > 0
    return _dominant_of(pixels, colours[kept], in_object[kept])


def color_distance(a: np.ndarray, b: np.ndarray) -> float:
    """ΔE2000 between two Lab colours."""
    return float(deltaE_ciede2000(np.asarray(a, float), np.asarray(b, float)))


def color_distances(pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """:func:`color_distance` of each ``(a, b)`` pair, in one ``deltaE_ciede2000`` call (elementwise, so the
    same values; the call's fixed cost of some 60 small NumPy operations is paid once per bundle)."""
    a = np.array([np.asarray(p, float) for p, _ in pairs])
    b = np.array([np.asarray(q, float) for _, q in pairs])
    return [float(d) for d in deltaE_ciede2000(a, b)]


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
            d_src, d_tgt, d_refs = color_distances([(out, source), (out, target), (source, target)])
            why = f"output ΔE {d_src:.1f} to source, {d_tgt:.1f} to target"
            if d_refs < MARGIN_DE:
                return None, f"source and target colours are indistinguishable; {why}"
            if d_src + MARGIN_DE <= d_tgt:
                return True, f"nearer the source colour: {why}"
            if d_tgt + MARGIN_DE <= d_src:
                return False, f"nearer the target colour: {why}"
            return None, f"ambiguous: {why}"
        ref = reference_color(images[0])
        d_base, d_out = color_distances([(dominant_color(images[1]), ref), (dominant_color(images[2]), ref)])
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
