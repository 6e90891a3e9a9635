"""The glyph identity judge: reading rendered glyphs exactly, bounded noise robustness, every identity question,
and the glyph task family it judges."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mechinterp.judges import QUESTIONS
from mechinterp.judges.glyph import DIFFERENT_CELLS, SAME_CELLS, GlyphJudge, agreement, read_glyph
from mechinterp.tasks import load_family, load_pairs
from mechinterp.tasks.glyph import (
    BACKGROUND,
    GLYPHS,
    MIN_PAIR_DISTANCE,
    ON_CELLS,
    REPLICATES,
    distance,
    glyph_set,
    random_glyph,
    render_glyph,
)

glyphs = st.integers(0, 2**31 - 1).map(lambda s: random_glyph(random.Random(s)))
sizes = st.sampled_from([32, 48, 64, 96, 128, 256])


@settings(max_examples=60, deadline=None)
@given(glyph=glyphs, size=sizes)
def test_a_rendered_glyph_reads_back_as_itself_at_every_size(glyph, size):
    reading = read_glyph(render_glyph(glyph, size, size))
    assert reading.cells == glyph and reading.complete


@settings(max_examples=40, deadline=None)
@given(glyph=glyphs, seed=st.integers(0, 2**16), sigma=st.floats(0, 8))
def test_gaussian_noise_up_to_8_levels_changes_no_cell(glyph, seed, sigma):
    arr = np.asarray(render_glyph(glyph), float)
    noisy = arr + np.random.default_rng(seed).normal(0, sigma, arr.shape)
    assert read_glyph(Image.fromarray(np.clip(noisy, 0, 255).round().astype(np.uint8))).cells == glyph


@settings(max_examples=40, deadline=None)
@given(glyph=glyphs, dy=st.integers(-6, 6), dx=st.integers(-6, 6))
def test_a_shifted_square_is_still_found_and_read(glyph, dy, dx):
    arr = np.asarray(render_glyph(glyph, 64, 64))
    shifted = np.full_like(arr, BACKGROUND)
    shifted[max(dy, 0):64 + min(dy, 0), max(dx, 0):64 + min(dx, 0)] = arr[max(-dy, 0):64 - max(dy, 0), max(-dx, 0):64 - max(dx, 0)]
    assert read_glyph(Image.fromarray(shifted)).cells == glyph


def test_no_square_on_a_blank_or_noise_image():
    assert read_glyph(Image.new("RGB", (64, 64), BACKGROUND)).cells is None
    rng = np.random.default_rng(0)
    assert read_glyph(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))).cells is None


def test_an_off_palette_cell_is_unreadable_and_never_agrees():
    glyph = glyph_set()[0]
    arr = np.asarray(render_glyph(glyph, 64, 64)).copy()
    arr[16:24, 16:24] = (200, 30, 30)  # cell 0 in red
    reading = read_glyph(Image.fromarray(arr))
    assert reading.cells[0] is None and reading.cells[1:] == glyph[1:] and not reading.complete
    assert agreement(reading, read_glyph(render_glyph(glyph))) == 15


def test_the_empty_square_reads_all_off():
    assert read_glyph(render_glyph(None)).cells == (0,) * 16


def _flip(glyph, k):
    return tuple(1 - b if i < k else b for i, b in enumerate(glyph))


A, B = glyph_set()[0], next(g for g in glyph_set() if distance(g, glyph_set()[0]) == 8)
IMG = {name: render_glyph(g) for name, g in (("A", A), ("B", B))}
EMPTY, BLANK = render_glyph(None), Image.new("RGB", (64, 64), BACKGROUND)


def _decide(qid, *images):
    return GlyphJudge().decide(QUESTIONS[qid], tuple(images))[0]


@pytest.mark.parametrize("tokens", ["", "_padding", "_content"])
def test_lens_asks_whether_the_output_is_a_different_glyph(tokens):
    q = f"lens{tokens}.identity"
    assert _decide(q, IMG["A"], EMPTY, IMG["A"]) is False  # same glyph: not a different individual
    assert _decide(q, IMG["A"], EMPTY, IMG["B"]) is True
    assert _decide(q, IMG["A"], EMPTY, EMPTY) is True
    assert _decide(q, IMG["A"], EMPTY, BLANK) is True  # no square: no glyph, so not the same
    amb = render_glyph(_flip(A, 16 - (SAME_CELLS + DIFFERENT_CELLS) // 2 - 1))
    assert DIFFERENT_CELLS < agreement(read_glyph(amb), read_glyph(IMG["A"])) < SAME_CELLS
    assert _decide(q, IMG["A"], EMPTY, amb) is None
    assert _decide(q, BLANK, EMPTY, IMG["A"]) is None  # no reference glyph: abstain


@pytest.mark.parametrize("prefix", ["ko_text", "ko_text_padding", "ko_text_content"])
def test_ref_to_text_knockouts_ask_whether_the_glyph_was_lost(prefix):
    q = f"{prefix}.identity"
    assert _decide(q, IMG["A"], IMG["A"], IMG["B"]) is True
    assert _decide(q, IMG["A"], IMG["A"], IMG["A"]) is False
    assert _decide(q, IMG["A"], IMG["B"], IMG["B"]) is None  # the baseline never showed it


@pytest.mark.parametrize("prefix", ["ko_image", "refdrop"])
def test_ref_to_image_knockout_and_refdrop_ask_whether_the_glyph_was_kept(prefix):
    q = f"{prefix}.identity"
    assert _decide(q, IMG["A"], IMG["A"], IMG["A"]) is True
    assert _decide(q, IMG["A"], IMG["A"], EMPTY) is False
    assert _decide(q, IMG["A"], EMPTY, IMG["A"]) is None


@pytest.mark.parametrize("tokens", ["", "_padding", "_content"])
def test_patching_asks_whether_the_source_glyph_transferred(tokens):
    q = f"patching{tokens}.identity"
    assert _decide(q, IMG["A"], IMG["B"], IMG["B"], IMG["A"]) is True
    assert _decide(q, IMG["A"], IMG["B"], IMG["B"], IMG["B"]) is False
    assert _decide(q, IMG["A"], IMG["B"], IMG["B"], BLANK) is False
    assert _decide(q, IMG["A"], IMG["A"], IMG["A"], IMG["A"]) is None  # the references are the same glyph
    differ = [i for i in range(16) if A[i] != B[i]]
    half = tuple(B[i] if i in differ[: len(differ) // 2] else A[i] for i in range(16))  # half the differences from B
    assert abs(agreement(read_glyph(render_glyph(half)), read_glyph(IMG["A"]))
               - agreement(read_glyph(render_glyph(half)), read_glyph(IMG["B"]))) < 2
    assert _decide(q, IMG["A"], IMG["B"], IMG["B"], render_glyph(half)) is None


def test_the_glyph_judge_answers_exactly_the_identity_questions():
    judge = GlyphJudge()
    answered = {q for q, v in QUESTIONS.items() if judge.supports(v)}
    assert answered == {q for q in QUESTIONS if q.endswith(".identity")} and answered
    with pytest.raises(ValueError, match="cannot answer"):
        judge.judge("lens.color", [IMG["A"]] * 3)
    assert judge.judge("ko_image.identity", [IMG["A"]] * 3).passed is True


def test_the_glyph_family_and_its_pairs():
    tasks = load_family("glyph")
    assert len(tasks) == GLYPHS * REPLICATES == len({t.task_id for t in tasks})
    assert len(set(glyph_set())) == GLYPHS and all(sum(g) == ON_CELLS for g in glyph_set())
    assert {t.instruction for t in tasks} == {"draw this square"}
    t = tasks[7]
    assert read_glyph(t.reference_image(64, 64)).cells == tuple(t.metadata["glyph"])
    pairs = load_pairs("glyph")
    assert len(pairs) == GLYPHS * REPLICATES
    for p in pairs:
        assert distance(tuple(p.source.metadata["glyph"]), tuple(p.target.metadata["glyph"])) >= MIN_PAIR_DISTANCE
        assert p.source.seed != p.target.seed
