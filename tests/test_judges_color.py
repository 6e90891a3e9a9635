"""ColorJudge on synthetic bundles whose answer is known, and judge agreement (Cohen's κ)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mechinterp.judges import QUESTIONS, ColorJudge, Verdict, agreement, cohen_kappa
from mechinterp.judges.color import color_distance, dominant_color, reference_color

#: the paper's eight solid reference colours (RGB of ../shared/reference/i2i-interp/solid_colors)
PAPER_COLORS = {"blue": (40, 90, 220), "brown": (120, 75, 45), "green": (50, 170, 80),
                "orange": (230, 120, 40), "pink": (230, 120, 170), "purple": (140, 60, 180),
                "red": (220, 40, 40), "yellow": (240, 210, 60)}
BACKGROUNDS = [(245, 245, 245), (128, 128, 128), (230, 220, 200)]
GREY = (128, 128, 128)


def solid(rgb) -> Image.Image:
    return Image.new("RGB", (64, 64), rgb)


def scene(rgb, background=(245, 245, 245), seed=0, size=96) -> Image.Image:
    """A generated-looking image: a shaded ellipse of colour ``rgb`` with a darker base on a
    noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.broadcast_to(np.asarray(background, float), (size, size, 3)).copy()
    inside = ((xx - 0.5) / 0.3) ** 2 + ((yy - 0.5) / 0.35) ** 2 < 1
    shade = 1.0 - 0.15 * (xx - 0.3)  # light from the left
    img[inside] = np.asarray(rgb, float) * shade[inside, None]
    img[(yy > 0.82) & (abs(xx - 0.5) < 0.1)] = (60, 50, 40)  # a little stand in another colour
    img += rng.normal(0, 4, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def far(color: str) -> tuple[int, int, int]:
    """The paper colour farthest (ΔE2000) from ``color``: an unmistakably different object."""
    ref = reference_color(solid(PAPER_COLORS[color]))
    return max(PAPER_COLORS.values(), key=lambda rgb: color_distance(reference_color(solid(rgb)),
                                                                      ref))


def blend(a, b, t: float) -> tuple[int, ...]:
    return tuple(round((1 - t) * x + t * y) for x, y in zip(a, b))


def test_dominant_color_finds_the_object_not_the_background():
    for name, rgb in PAPER_COLORS.items():
        for background in BACKGROUNDS:
            found = dominant_color(scene(rgb, background))
            assert color_distance(found, reference_color(solid(rgb))) < 6, (name, background)


def test_an_image_that_is_all_one_colour_counts_as_that_colour():
    assert color_distance(dominant_color(solid((50, 170, 80))),
                          reference_color(solid((50, 170, 80)))) < 1


def test_an_image_of_few_colours_gives_the_most_common_one_without_warnings():
    """Two flat colours (a degenerate generation) are fewer than k-means' clusters: the commonest wins,
    with no empty-cluster or divide-by-zero warning from scipy."""
    img = np.zeros((64, 64, 3), np.uint8)
    img[:] = (128, 128, 128)
    img[16:48, 16:48] = PAPER_COLORS["green"]  # the object, away from the border
    img[30:34, 30:34] = PAPER_COLORS["red"]  # a small patch of a third colour
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = dominant_color(Image.fromarray(img))
    assert color_distance(found, reference_color(solid(PAPER_COLORS["green"]))) < 1


@pytest.mark.parametrize("color", sorted(PAPER_COLORS))
def test_lens_color(color):
    ref, rgb, other = solid(PAPER_COLORS[color]), PAPER_COLORS[color], far(color)
    judge = ColorJudge()
    assert judge.judge("lens.color", [ref, scene(other), scene(rgb, seed=1)]).passed is True
    assert judge.judge("lens.color", [ref, scene(other), scene(other, seed=2)]).passed is False
    assert judge.judge("lens.color", [ref, scene(rgb), scene(rgb, seed=3)]).passed is False


@pytest.mark.parametrize("variant", ["ko_text", "ko_text_padding", "ko_text_content"])
def test_knockout_ref_to_text_asks_lost(variant):
    judge, rgb = ColorJudge(), PAPER_COLORS["green"]
    assert judge.judge(f"{variant}.color", [solid(rgb), scene(rgb), scene(far("green"))]).passed \
        is True
    assert judge.judge(f"{variant}.color", [solid(rgb), scene(rgb), scene(rgb, seed=1)]).passed \
        is False


def test_knockout_ref_to_image_asks_kept_and_has_inverted_polarity():
    judge, rgb = ColorJudge(), PAPER_COLORS["orange"]
    kept = judge.judge("ko_image.color", [solid(rgb), scene(rgb), scene(rgb, seed=1)])
    lost = judge.judge("ko_image.color", [solid(rgb), scene(rgb), scene(far("orange"))])
    assert (kept.passed, lost.passed) == (True, False)
    assert QUESTIONS["ko_image.color"].event(lost.passed) is True  # destroyed


def test_knockout_abstains_when_the_baseline_never_had_the_colour():
    rgb = PAPER_COLORS["red"]
    verdict = ColorJudge().judge("ko_text.color", [solid(rgb), scene(GREY), scene(GREY, seed=1)])
    assert verdict.abstained and "baseline does not show" in verdict.reason


def test_patch_color_every_ordered_pair_of_paper_colours():
    judge = ColorJudge()
    for (a, rgb_a), (b, rgb_b) in itertools.permutations(PAPER_COLORS.items(), 2):
        refs = [solid(rgb_a), solid(rgb_b), scene(rgb_b)]
        took_source = judge.judge("patching.color", refs + [scene(rgb_a, seed=1)])
        kept_target = judge.judge("patching.color", refs + [scene(rgb_b, seed=1)])
        assert (took_source.passed, kept_target.passed) == (True, False), (a, b)


def test_ambiguous_colours_abstain():
    judge = ColorJudge()
    red, orange = PAPER_COLORS["red"], PAPER_COLORS["orange"]
    ref_red, ref_orange = reference_color(solid(red)), reference_color(solid(orange))
    halfway = min((blend(red, orange, t / 20) for t in range(21)), key=lambda rgb: abs(
        color_distance(reference_color(solid(rgb)), ref_red)
        - color_distance(reference_color(solid(rgb)), ref_orange)))
    patch = judge.judge("patching.color", [solid(red), solid(orange), scene(orange), scene(halfway)])
    assert patch.abstained and "ambiguous" in patch.reason
    same = judge.judge("patching.color", [solid(red), solid(red), scene(red), scene(red)])
    assert same.abstained and "indistinguishable" in same.reason
    green = PAPER_COLORS["green"]
    ref_green = reference_color(solid(green))
    mid = next(rgb for rgb in (blend(green, GREY, t / 20) for t in range(21))  # between thresholds
               if 17 < color_distance(reference_color(solid(rgb)), ref_green) < 23)
    assert judge.judge("lens.color", [solid(green), scene(far("green")), scene(mid)]).abstained


def test_verdicts_name_the_rule_and_are_cacheable(tmp_path):
    from mechinterp.judges import VerdictCache

    judge = ColorJudge(cache=VerdictCache(tmp_path))
    rgb = PAPER_COLORS["blue"]
    items = [("lens.color", [solid(rgb), scene(GREY), scene(rgb)])] * 2
    first = judge.judge_many(items)
    assert first[0].judge.startswith("color:cielab-de2000") and first[0].question_id == "lens.color"
    assert first[0] == first[1] and not first[0].cached
    assert all(v.cached for v in judge.judge_many(items))


def v(passed, qid="lens.color") -> Verdict:
    return Verdict(passed, "", f"j:m:{qid}")


def test_cohen_kappa_textbook_example():
    # 50 items: both yes 20, A yes/B no 5, A no/B yes 10, both no 15  -> kappa = 0.4
    a = [True] * 25 + [False] * 25
    b = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15
    observed, expected, kappa = cohen_kappa(a, b)
    assert (observed, expected) == pytest.approx((0.7, 0.5)) and kappa == pytest.approx(0.4)


def test_agreement_table_keeps_abstentions_out_of_kappa():
    a = [v(True), v(True), v(False), v(None), v(False)]
    b = [v(True), v(False), v(False), v(True), v(None)]
    result = agreement(a, b)
    assert result.n == 5 and result.n_both == 3
    assert result.table[(True, True)] == 1 and result.table[(None, True)] == 1
    assert sum(result.table.values()) == 5
    assert result.kappa == pytest.approx(cohen_kappa([True, True, False], [True, False, False])[2])
    assert "kappa" in result.format()
    assert math.isnan(agreement([v(True)] * 3, [v(True)] * 3).kappa)  # undefined, not 1 or 0


def test_agreement_rejects_mismatched_bundles():
    with pytest.raises(ValueError, match="differ in length: 1 vs 2"):
        agreement([v(True)], [v(True), v(False)])
    with pytest.raises(ValueError, match="bundle 0: judge A answered 'lens.color' but judge B "
                                         "answered 'patching.color'"):
        agreement([v(True)], [v(True, "patching.color")])


def test_paper_colours_are_the_released_reference_images():
    refs = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "i2i-interp" \
        / "solid_colors"
    if not refs.is_dir():
        pytest.skip(f"released solid colours not found at {refs}")
    for name, rgb in PAPER_COLORS.items():
        with Image.open(refs / f"solid_{name}.png") as im:
            assert color_distance(reference_color(im), reference_color(solid(rgb))) < 0.5


def test_pixel_memo_answers_by_pixels_not_by_object():
    """The colour rule is memoised by an image's pixels: an equal image (another object) gets the very same
    read-only answer, a different image its own, and the memo equals the rule computed afresh."""
    a, same, other = scene((220, 40, 40), seed=3), scene((220, 40, 40), seed=3), scene((40, 90, 220), seed=3)
    first = dominant_color(a)
    assert dominant_color(same) is first and not first.flags.writeable
    assert not np.array_equal(dominant_color(other), first)
    fresh = dominant_color.__wrapped__(a)
    assert np.array_equal(fresh, first)
    assert reference_color(solid((1, 2, 3))) is reference_color(solid((1, 2, 3)))
    assert not np.array_equal(reference_color(solid((1, 2, 3))), reference_color(solid((1, 2, 4))))
    # the mode is part of the key: the same bytes read as another mode are another image
    grey = Image.new("L", (8, 8), 128)
    assert reference_color(grey) is not reference_color(Image.new("L", (8, 8), 129))
    # a palette image's bytes are indices: two with the same indices and other palettes are other colours
    red, blue = (solid(c).quantize(2) for c in ((220, 30, 30), (30, 30, 220)))
    assert red.tobytes() == blue.tobytes() and red.getpalette() != blue.getpalette()
    assert not np.array_equal(reference_color(red), reference_color(blue))


def test_bounded_memo_keys_by_digest_and_keeps_the_newest():
    """``io.bounded_memo``: one call per key, at most ``size`` entries (the oldest go first), None results kept."""
    from mechinterp.io import bounded_memo

    calls = []

    @bounded_memo(lambda x: x % 10, size=2)
    def f(x):
        calls.append(x)
        return None if x == 3 else x * 2

    assert (f(1), f(11), f(3), f(13)) == (2, 2, None, None) and calls == [1, 3]  # 11 ~ 1, 13 ~ 3 by key
    f(5)  # evicts key 1, the oldest
    assert f(1) == 2 and calls == [1, 3, 5, 1]
    f.cache_clear()
    f(5)
    assert calls[-1] == 5
