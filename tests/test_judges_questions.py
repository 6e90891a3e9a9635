"""The question bank against the paper's Appendix E and the authors' released verdicts."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from PIL import Image

from mechinterp.judges import QUESTIONS, SYSTEM_PROMPT, ColorJudge, get_question

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PAPER = SHARED / "paper" / "002_571447450c379c4a.txt"
VERDICTS = SHARED / "reference" / "i2i-interp" / "verdicts"

VARIANTS = ("", "_padding", "_content")
EXPECTED_IDS = (
    {f"lens{v}.{f}" for v in VARIANTS for f in ("color", "style", "identity", "scene")}
    | {f"{e}.{f}" for e in ("ko_text", "ko_text_padding", "ko_text_content", "ko_image", "refdrop")
       for f in ("color", "style", "identity")}
    | {f"patching{v}.{f}" for v in VARIANTS for f in ("color", "style", "identity")}
)

#: released CSV stem -> question id (the README's table of which CSV feeds which cell)
CSV_QUESTION = {
    "i2i_unc_color_text_lens": "lens.color", "i2i_unc_style_text_lens": "lens.style",
    "i2i_unc_style_text_lens_padding": "lens_padding.style",
    "i2i_unc_style_text_lens_content": "lens_content.style",
    "i2i_unc_dreambench_human_identity": "lens.identity", "i2i_unc_add": "lens.scene",
    "i2i_unc_remove": "lens.scene",
    **{f"ko_{src}_ref_to_text{suffix}": f"ko_text{suffix}.{fam}"
       for src, fam in (("color", "color"), ("style", "style"), ("dreambench_human", "identity"))
       for suffix in ("", "_padding", "_content")},
    **{f"ko_{src}_ref_to_image": f"ko_image.{fam}"
       for src, fam in (("color", "color"), ("style", "style"), ("dreambench_human", "identity"))},
    **{f"i2i2i_{src}{suffix}": f"patching{variant}.{fam}"
       for src, fam in (("color", "color"), ("style", "style"), ("dreambench_humans", "identity"))
       for suffix, variant in (("", ""), ("_text_padding", "_padding"), ("_text_content", "_content"))},
}

#: Known answers: the Image labels of the authors' released judge bundles
#: (scripts/judge/bundles.py at ChrisG777/i2i-interp@c8ecdbd), typed out here, with the release's
#: global "clipart" -> "style" rewrite undone (its verdicts were judged before it).
RELEASED_LABELS = {
    "lens.color": ("Image 1 - solid color reference:",
                   "Image 2 - text-to-image baseline (no patching) of the prompt:",
                   "Image 3 - same generation, but with text tokens patched in from a reference-conditioned i2i pass:"),
    "lens_padding.style": ("Image 1 - clipart / cartoon reference:", "Image 2 - clean text-to-image baseline:",
                           "Image 3 - same generation, but with ONLY text-padding tokens patched from a "
                           "reference-conditioned i2i pass:"),
    "lens_content.style": ("Image 1 - clipart / cartoon reference:", "Image 2 - clean text-to-image baseline:",
                           "Image 3 - same generation, but with ONLY text-content tokens patched from a "
                           "reference-conditioned i2i pass:"),
    "lens.identity": ("Image 1 - reference photo of a person:",
                      "Image 2 - text-to-image baseline of the same scene description:",
                      "Image 3 - same generation, but with text tokens patched from the reference-conditioned i2i pass:"),
    "lens.scene": ("Image 1 - reference image used to condition the source i2i pass:",
                   "Image 2 - clean text-to-image baseline of the prompt:",
                   "Image 3 - same generation, but with text tokens patched from the reference-conditioned i2i pass:"),
    "ko_text_padding.color": ("Image 1 - solid color reference:", "Image 2 - clean reference-conditioned i2i baseline:",
                              "Image 3 - same i2i, but with ref->text attention blocked ONLY at the Qwen3 "
                              "text-padding positions:"),
    "ko_text_content.style": ("Image 1 - clipart reference:", "Image 2 - clean reference-conditioned i2i baseline:",
                              "Image 3 - same i2i, but with ref->text attention blocked ONLY at the Qwen3 "
                              "text-content positions:"),
    "ko_image.identity": ("Image 1 - reference photo of a person:",
                          "Image 2 - clean reference-conditioned i2i baseline (this should look like the person in "
                          "Image 1):",
                          "Image 3 - same i2i, but with the ref->image attention path completely blocked:"),
    "patching.color": ("Image 1 - solid color reference for the SOURCE i2i pass:",
                    "Image 2 - solid color reference for the TARGET i2i pass:",
                    "Image 3 - clean i2i generation conditioned on Image 2 (no patching):",
                    "Image 4 - same target generation, but with text-token activations patched from the SOURCE i2i pass:"),
    "patching_padding.color": ("Image 1 - solid color reference for the SOURCE i2i pass:",
                            "Image 2 - solid color reference for the TARGET i2i pass:",
                            "Image 3 - clean i2i generation conditioned on Image 2 (no patching):",
                            "Image 4 - same target generation, but with ONLY the text-padding tokens patched from "
                            "the SOURCE i2i pass:"),
    "patching_content.style": ("Image 1 - clipart SOURCE reference:",
                            "Image 2 - real-photo TARGET reference (same subject):",
                            "Image 3 - clean i2i generation conditioned on Image 2:",
                            "Image 4 - same target generation, but with ONLY the text-content tokens patched from "
                            "the SOURCE clipart i2i pass:"),
    "patching_padding.identity": ("Image 1 - photo of person A (SOURCE i2i reference):",
                               "Image 2 - photo of person B (TARGET i2i reference):",
                               "Image 3 - clean i2i generation conditioned on person B:",
                               "Image 4 - same target generation, but with ONLY the text-padding tokens patched from "
                               "person A's i2i pass:"),
}


@pytest.mark.parametrize("qid", sorted(RELEASED_LABELS))
def test_labels_are_the_released_ones(qid):
    assert QUESTIONS[qid].labels == RELEASED_LABELS[qid]


def test_variants_share_the_question_and_differ_in_the_output_label():
    for base in ("lens.style", "lens.color", "patching.color", "patching.identity"):
        prefix, family = base.split(".")
        full = QUESTIONS[base]
        for variant, tokens in (("_padding", "text.padding"), ("_content", "text.content")):
            q = QUESTIONS[f"{prefix}{variant}.{family}"]
            assert (q.question, q.roles, q.polarity, q.labels[:-1]) == (full.question, full.roles, full.polarity,
                                                                         full.labels[:-1])
            assert q.tokens == tokens and q.labels[-1] != full.labels[-1]


def test_reference_drop_asks_the_kept_question_with_its_own_label():
    for family in ("color", "style", "identity"):
        drop, ko = QUESTIONS[f"refdrop.{family}"], QUESTIONS[f"ko_image.{family}"]
        assert drop.question == ko.question and drop.polarity == ko.polarity == "inverted"
        assert drop.roles == ("reference", "i2i_baseline", "ref_drop_output")
        assert drop.labels[:2] == ko.labels[:2] and "completely blocked" not in drop.labels[2]
        assert "removed from the cutoff block on" in drop.labels[2]


def norm(text: str) -> str:
    return " ".join(text.split())


def paper_appendix_e() -> tuple[str, set[str]]:
    """(system prompt, questions) as printed in the paper's Appendix E."""
    if not PAPER.exists():
        pytest.skip(f"paper text not found at {PAPER}")
    text = PAPER.read_text()
    section = text[text.index("E VLM-as-judge prompts"):
                   text.index("F VLM-assisted instruction generation")]
    blocks = re.findall(r"```\n(.*?)```", section, re.S)
    prose = re.sub(r"```\n.*?```", "", section, flags=re.S)
    questions = {norm(b) for b in blocks[1:]}
    questions |= {norm(line) for line in prose.splitlines()
                  if line.startswith(("Compared to", "Focus on"))}
    return norm(blocks[0]), questions


def test_bank_has_exactly_the_issue_ids():
    assert set(QUESTIONS) == EXPECTED_IDS


def test_every_paper_question_is_in_the_bank_verbatim():
    system, paper_questions = paper_appendix_e()
    assert len(paper_questions) == 10  # lens 4, ref->text knockout 3, patching 3
    assert norm(SYSTEM_PROMPT) == system
    from_paper = {norm(q.question) for q in QUESTIONS.values()
                  if q.experiment in ("lens", "ko_text", "patching")}
    assert from_paper == paper_questions
    assert all(q.system == SYSTEM_PROMPT for q in QUESTIONS.values())


def test_knockout_variants_only_swap_the_parenthetical():
    for family in ("color", "style", "identity"):
        full = QUESTIONS[f"ko_text.{family}"].question
        for variant in ("padding", "content"):
            q = QUESTIONS[f"ko_text_{variant}.{family}"]
            assert q.question == full.replace("ref->text", f"ref->text[{variant}]")
            assert f"ref->text[{variant}]" in q.question and q.roles == QUESTIONS[
                f"ko_text.{family}"].roles


@pytest.mark.parametrize("qid", sorted(EXPECTED_IDS))
def test_roles_match_the_images_the_question_names(qid):
    q = QUESTIONS[qid]
    mentioned = {int(n) for n in re.findall(r"Image (\d)", q.question)}
    assert max(mentioned) == len(q.roles) == len(q.labels)
    assert [label.split(" - ")[0] for label in q.labels] == [
        f"Image {i}" for i in range(1, len(q.roles) + 1)]
    assert len(set(q.roles)) == len(q.roles)
    assert q.id in {f"{q.experiment}{v}.{q.family}" for v in VARIANTS}


def test_roles_and_polarity_by_experiment():
    for q in QUESTIONS.values():
        expected_roles = {
            "lens": ("reference", "t2i_baseline", "lens_output"),
            "patching": ("source_reference", "target_reference", "target_baseline",
                      "patched_output"),
            "refdrop": ("reference", "i2i_baseline", "ref_drop_output"),
        }.get(q.experiment, ("reference", "i2i_baseline", "knockout_output"))
        assert q.roles == expected_roles
        inverted = q.family == "identity" and q.experiment == "lens" or q.experiment in ("ko_image", "refdrop")
        assert q.polarity == ("inverted" if inverted else "pass"), q.id
    assert QUESTIONS["ko_image.color"].event(True) is False
    assert QUESTIONS["ko_text.color"].event(True) is True
    assert QUESTIONS["lens.color"].event(None) is None


def test_color_judge_answers_every_color_question_and_nothing_else():
    judge = ColorJudge()
    color_ids = {q for q in QUESTIONS if q.endswith(".color")}
    assert {q for q, v in QUESTIONS.items() if judge.supports(v)} == color_ids
    with pytest.raises(ValueError, match=r"cannot answer question 'lens.style'.*lens.color"):
        judge.judge("lens.style", [Image.new("RGB", (8, 8))] * 3)


def test_errors_name_the_bad_value_and_the_choices():
    with pytest.raises(KeyError, match=r"unknown question id 'lens.colour'.*'lens.color'"):
        get_question("lens.colour")
    with pytest.raises(ValueError,
                       match=r"takes 4 images in the order \('source_reference'.*got 3"):
        ColorJudge().judge("patching.color", [Image.new("RGB", (8, 8))] * 3)
    with pytest.raises(TypeError, match="'t2i_baseline' must be a PIL.Image.Image, got str"):
        ColorJudge().judge("lens.color", [Image.new("RGB", (8, 8)), "x.png",
                                          Image.new("RGB", (8, 8))])


def read_verdicts(stem: str) -> list[dict]:
    with open(VERDICTS / f"{stem}.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def released():
    if not VERDICTS.is_dir():
        pytest.skip(f"released verdicts not found at {VERDICTS}")
    return {p.stem for p in VERDICTS.glob("*.csv")}


def test_every_released_judge_maps_to_a_question(released):
    assert released == set(CSV_QUESTION)
    for stem in released:
        assert read_verdicts(stem)[0]["model"] == "claude-opus-4-7"


@pytest.mark.parametrize("stem,k,n", [
    ("ko_color_ref_to_text", 276, 320),            # README: 86.2
    ("i2i2i_color_text_padding", 381, 448),        # README: 85.0
    ("i2i_unc_dreambench_human_identity", 0, 90),  # README: 0.0 (inverted)
])
def test_polarity_reproduces_the_released_rates(released, stem, k, n):
    question = QUESTIONS[CSV_QUESTION[stem]]
    rows = read_verdicts(stem)
    events = [question.event(row["pass"] == "1") for row in rows]
    assert (sum(events), len(events)) == (k, n)
