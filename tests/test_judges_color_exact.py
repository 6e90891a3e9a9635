"""The faster colour judge gives bit for bit what the plain one gave.

The oracle below is the colour judge as it was before it was made faster (every pixel through ΔE2000,
``np.unique`` over every object pixel, one ``deltaE_ciede2000`` call per distance). On a varied corpus
(noise, solids, images of 1 to 5 colours, organism targets with and without noise, shaded scenes,
large, small, non-square and non-RGB images) the dominant and reference colours must be the same bits,
the distances the same floats, and every decision and reason string the same.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image
from scipy.cluster.vq import kmeans2
from skimage.color import deltaE_ciede2000, rgb2lab

from mechinterp.judges import QUESTIONS, ColorJudge
from mechinterp.judges import color as C
from mechinterp.judges.images import as_rgb
from mechinterp.organisms.data import COLORS, SHAPES, reference_image, target_image


# -- the oracle: the colour judge before the speed-ups (kept verbatim) -------------------------------------
def old_lab_pixels(image):
    rgb = as_rgb(image)
    rgb = rgb.copy()
    rgb.thumbnail((C.WORK_SIZE, C.WORK_SIZE), Image.BILINEAR)
    return rgb2lab(np.asarray(rgb, dtype=np.float64) / 255.0)


def old_reference_color(image):
    return np.median(old_lab_pixels(image).reshape(-1, 3), axis=0)


def old_object_mask(lab):
    h, w, _ = lab.shape
    bh, bw = max(1, round(h * C.BORDER_FRACTION)), max(1, round(w * C.BORDER_FRACTION))
    frame = np.ones((h, w), bool)
    frame[bh:h - bh, bw:w - bw] = False
    border = np.median(lab[frame], axis=0)
    mask = deltaE_ciede2000(lab, np.broadcast_to(border, lab.shape)) > C.BACKGROUND_DE
    return mask if mask.mean() >= C.MIN_OBJECT_FRACTION else np.ones((h, w), bool)


def old_dominant_color(image):
    lab = old_lab_pixels(image)
    pixels = lab[old_object_mask(lab)]
    if len(pixels) < C.CLUSTERS * 4 or np.ptp(pixels, axis=0).max() < 1e-6:
        return np.median(pixels, axis=0)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    if len(colours) <= C.CLUSTERS:
        return colours[int(np.argmax(counts))]
    centroids, labels = kmeans2(pixels, C.CLUSTERS, minit="++", seed=0)
    counts = np.bincount(labels, minlength=C.CLUSTERS)
    return centroids[int(np.argmax(counts))]


def old_color_distance(a, b):
    return float(deltaE_ciede2000(np.asarray(a, float), np.asarray(b, float)))


def old_color_distances(pairs):
    return [old_color_distance(a, b) for a, b in pairs]


def old_decide(question, images, old_reference_color=old_reference_color, old_dominant_color=old_dominant_color):
    """``ColorJudge.decide`` (its rule is unchanged) on the old per-image primitives, put in place of the new."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(C, "reference_color", old_reference_color)
        mp.setattr(C, "dominant_color", old_dominant_color)
        mp.setattr(C, "color_distances", old_color_distances)
        return ColorJudge().decide(question, images)


def _noisy(image, rng, sigma):
    arr = np.asarray(image.convert("RGB"), float) + rng.normal(0, sigma, (image.height, image.width, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def corpus() -> list[Image.Image]:
    rng = np.random.default_rng(20)
    palette = list(COLORS.values())
    out: list[Image.Image] = []
    for size in ((64, 64), (8, 8), (3, 5), (97, 64), (128, 100), (200, 300)):  # uniform noise, any shape
        out.append(Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)))
    out += [Image.new("RGB", (64, 64), rgb) for rgb in palette + [(0, 0, 0), (255, 255, 255), (215, 215, 215)]]
    for n in (2, 3, 4, 5):  # images of exactly n colours, in blocks and scattered, some with a tiny minority
        for trial in range(4):
            colours = rng.integers(0, 256, (n, 3), dtype=np.uint8)
            if trial == 0:
                idx = np.zeros((64, 64), int)
                idx[20:44, 20:44] = rng.integers(0, n, (24, 24))
            elif trial == 1:
                idx = rng.integers(0, n, (64, 64))
            elif trial == 2:  # ties: the colours share the pixels equally
                idx = np.arange(64 * 64).reshape(64, 64) % n
            else:
                idx = np.zeros((64, 64), int)
                idx[30:34, 30:32] = np.arange(8).reshape(4, 2) % n
            out.append(Image.fromarray(colours[idx]))
    shapes = list(SHAPES)
    for i, (name, rgb) in enumerate(COLORS.items()):  # organism targets, clean and noisy, and references
        obj = shapes[i % len(shapes)]
        out.append(target_image(obj, rgb, 64))
        out.append(_noisy(target_image(obj, rgb, 64), rng, 6))
        out.append(_noisy(target_image(shapes[(i + 3) % len(shapes)], None, 64), rng, 3))
        out.append(reference_image(name, 64))
    out.append(target_image(None, None, 64))
    yy, xx = np.mgrid[0:96, 0:96] / 96
    for rgb in palette[:4]:  # shaded ellipses on noisy backgrounds
        img = np.full((96, 96, 3), 240.0)
        inside = ((xx - 0.5) / 0.3) ** 2 + ((yy - 0.5) / 0.35) ** 2 < 1
        img[inside] = np.asarray(rgb, float) * (1.0 - 0.15 * (xx[inside, None] - 0.3))
        out.append(Image.fromarray(np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)))
    rgba = np.concatenate([rng.integers(0, 256, (64, 64, 3)), rng.integers(0, 2, (64, 64, 1)) * 255], 2)
    out.append(Image.fromarray(rgba.astype(np.uint8), "RGBA"))
    out.append(target_image("lamp" if "lamp" in SHAPES else shapes[0], palette[0], 64).convert("L"))
    out.append(target_image(shapes[1], palette[2], 64).convert("P"))
    return out


@pytest.fixture(scope="module")
def images():
    return corpus()


def bits(x) -> bytes:
    return np.asarray(x, np.float64).tobytes()


def test_colours_are_the_same_bits(images):
    C.dominant_color.cache_clear()
    C.reference_color.cache_clear()
    for i, image in enumerate(images):
        assert bits(C.lab_pixels(image)) == bits(old_lab_pixels(image)), i
        assert bits(C.dominant_color(image)) == bits(old_dominant_color(image)), i
        assert bits(C.reference_color(image)) == bits(old_reference_color(image)), i
        lab = C.lab_pixels(image)
        assert np.array_equal(C.object_mask(lab), old_object_mask(lab)), i


def test_the_few_colours_path_is_exercised(images):
    """The corpus reaches every branch of the dominant-colour rule (else the comparison proves less)."""
    branches = set()
    for image in images:
        lab = old_lab_pixels(image)
        pixels = lab[old_object_mask(lab)]
        if len(pixels) < C.CLUSTERS * 4 or np.ptp(pixels, axis=0).max() < 1e-6:
            branches.add("median")
        elif len(np.unique(pixels, axis=0)) <= C.CLUSTERS:
            branches.add("few")
        else:
            branches.add("kmeans")
    assert branches == {"median", "few", "kmeans"}


def test_distances_are_the_same_floats(images):
    colours = [old_dominant_color(im) for im in images] + [old_reference_color(im) for im in images[6:20]]
    pairs = list(itertools.product(colours[::3], colours[1::4]))
    assert C.color_distances(pairs) == [old_color_distance(a, b) for a, b in pairs]
    assert [C.color_distance(a, b) for a, b in pairs[:50]] == [old_color_distance(a, b) for a, b in pairs[:50]]


def test_every_decision_and_reason_is_the_same(images):
    """Every colour question on bundles drawn from the corpus (references from its solid images)."""
    C.dominant_color.cache_clear()
    C.reference_color.cache_clear()
    rng = np.random.default_rng(7)
    refs = [Image.new("RGB", (64, 64), rgb) for rgb in COLORS.values()] + images[6:17]
    judge = ColorJudge()
    checked = 0
    for question in (q for q in QUESTIONS.values() if q.family == "color"):
        for _ in range(12):
            picks = [images[j] for j in rng.integers(0, len(images), 3)]
            r1, r2 = (refs[j] for j in rng.integers(0, len(refs), 2))
            bundle = (r1, r2, picks[0], picks[1]) if question.experiment == "patching" else (r1, picks[0], picks[1])
            assert judge.decide(question, bundle) == old_decide(question, bundle), (question.id, _)
            checked += 1
    assert checked >= 60


def test_designed_bundles_reach_every_verdict_and_agree():
    """Bundles built to reach each branch of every question (shows / lacks / ambiguous baselines and
    outputs, near and far patching references): the same decisions and reasons, and every kind is reached."""
    rng = np.random.default_rng(11)
    shapes = list(SHAPES)
    judge = ColorJudge()
    seen = set()
    experiments = list({q.experiment: q for q in QUESTIONS.values() if q.family == "color"}.values())
    memo: dict = {}

    def memoised(fn):  # by identity: the images are kept alive with their entry
        def call(image):
            if (fn, id(image)) not in memo:
                memo[fn, id(image)] = fn(image), image
            return memo[fn, id(image)][0]
        return call

    oracle = {"old_reference_color": memoised(old_reference_color), "old_dominant_color": memoised(old_dominant_color)}
    for k, (name, rgb) in enumerate(COLORS.items()):
        shifted = tuple(int(v) for v in np.clip(np.asarray(rgb) + (26, -22, 18), 0, 255))  # ~ΔE 15-25 away
        other = list(COLORS.values())[(k + 3) % len(COLORS)]
        variants = [target_image(shapes[k % 8], rgb, 64), _noisy(target_image(shapes[(k + 1) % 8], rgb, 64), rng, 5),
                    target_image(shapes[(k + 2) % 8], shifted, 64), target_image(shapes[(k + 4) % 8], other, 64),
                    target_image(shapes[(k + 5) % 8], None, 64)]
        ref, near, far = reference_image(name, 64), Image.new("RGB", (64, 64), shifted), Image.new("RGB", (64, 64), other)
        for question in experiments:
            for base, out in itertools.product(variants, repeat=2):
                if question.experiment == "patching":
                    bundles = [(ref, far, base, out), (ref, near, base, out), (ref, Image.new("RGB", (64, 64), rgb), base, out)]
                else:
                    bundles = [(ref, base, out)]
                for bundle in bundles:
                    got = judge.decide(question, bundle)
                    assert got == old_decide(question, bundle, **oracle), (question.id, name)
                    seen.add((question.experiment == "patching", got[0], got[1].split(";")[0].split(":")[0]))
    assert len({s for s in seen if not s[0]}) >= 7 and len({s for s in seen if s[0]}) == 4, sorted(seen, key=str)


def test_distinct_pixels_share_only_identical_bits():
    rgb = np.array([[[1, 2, 3], [4, 5, 6]], [[1, 2, 3], [1, 2, 3]]], np.uint8)
    lab = C._lab_of(rgb)
    colours, inverse = C._distinct_pixels(rgb, lab)
    assert len(colours) == 2 and bits(colours[inverse]) == bits(lab.reshape(-1, 3))
    signed = lab.copy()
    signed[0, 1, 2] = -0.0  # np.unique holds -0.0 == 0.0; bits do not: nothing is shared
    assert C._distinct_pixels(rgb, signed) is None
    differing = lab.copy()
    differing[1, 1, 0] = np.nextafter(differing[1, 1, 0], 200)  # one colour, two Lab values
    assert C._distinct_pixels(rgb, differing) is None
