"""The judge question bank of the paper (Appendix E), as data.

Every claim is decided by one closed yes/no question on a bundle of 2-4 labelled images.
A :class:`Question` carries the exact wording the judge sees, the image roles in the order
the question numbers them ("Image 1", "Image 2", ...), and its polarity: ``"pass"`` when a
``pass: 1`` verdict means the claim's event happened, ``"inverted"`` when it means the
opposite (lens on humans asks "different person?", the ref->image knockout asks "kept?").

Provenance. The system prompt and every lens, ref->text knockout and patching question are
copied from the paper's Appendix E (the system prompt as the authors' released code sends
it: the paper's code block only wraps its lines). The paper prints no wording for the three
ref->image knockout judges; theirs is copied from the authors' release
(``scripts/judge/bundles.py`` at ChrisG777/i2i-interp@c8ecdbd), where the word "clipart" was
globally rewritten to "style"; in ``ko_image.style`` the three places where that rewrite left
ungrammatical text are restored to the paper's "clipart" wording. The ref->text[padding] and
ref->text[content] variants "reuse the same question with the parenthetical ref->text
replaced" (paper), which is what :func:`_ko_text_variant` does.

Image labels follow the released code for every bundle and variant (the paper prints none):
the lens and patching variants name their token group as the release does ("with ONLY
text-padding tokens patched ...", "with ONLY the text-padding tokens patched ..."), the
knockout variants name "the Qwen3 text-padding positions". The release's "clipart"→"style"
rewrite is undone in labels as in questions (the authors' verdicts were judged before it; the
paper's wording for this family is "clipart"). The lens's Image 2 is the text-to-image run of
the edit's own prompt (seed + 1, no reference), as the release's ``t2i_clean``. Reference-drop
bundles have no released judge: they ask the ``ko_image`` question, with an Image 3 label that
says what a reference drop does (source: this project).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, Mapping

from mechinterp.vocabulary import EXPERIMENTS, FAMILIES, kind_of_question

Variant = Literal["text", "text.padding", "text.content"]
Polarity = Literal["pass", "inverted"]

SYSTEM_PROMPT = (
    "You are a strict visual judge for an image-editing interpretability experiment. "
    "You will be shown several labeled images and asked one yes/no question about whether "
    "a stated prediction is satisfied.\n"
    "Respond ONLY with a single JSON object on one line, no markdown, no preamble:\n"
    '{"pass": 0 or 1, "reason": "<one short sentence, <=25 words>"}\n'
    'The "pass" field is 1 if the prediction is satisfied, 0 otherwise. If the question '
    'cannot be answered from the images, reply with {"pass": 0, "reason": "cannot determine"}.'
)

PAPER = "paper Appendix E"
RELEASE = "authors' release scripts/judge/bundles.py (the paper prints no ref->image wording)"
PROJECT = ("this project: the ko_image question (authors' release) with an Image 3 label for the "
           "reference drop, which has no released judge")


@dataclass(frozen=True)
class Question:
    """One judge question: what is asked, of which images, and what ``pass`` means."""

    id: str
    family: str  # a family's question suffix (``vocabulary.FAMILIES``): ``identity`` for the human family
    experiment: str  # a question prefix of the experiment table: ``ko_text``, ``patch``...
    system: str
    question: str
    roles: tuple[str, ...]
    polarity: Polarity
    labels: tuple[str, ...]
    source: str = PAPER
    tokens: Variant = "text"  # the text tokens a lens / patching variant writes (its labels say which)

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.roles) or not 2 <= len(self.roles) <= 4:
            raise ValueError(f"question {self.id!r}: expected 2-4 roles with one label each, "
                             f"got roles={self.roles} labels={len(self.labels)}")
        kind = kind_of_question(self.experiment)
        if kind is None or self.roles != kind.roles:
            raise ValueError(f"question {self.id!r}: prefix {self.experiment!r} must be one of an experiment kind's "
                             f"question prefixes, with that kind's roles (got {self.roles})")
        if self.family not in {f.question for f in FAMILIES.values()}:
            raise ValueError(f"question {self.id!r}: family {self.family!r} is not a family's question suffix")
        if self.polarity not in ("pass", "inverted"):
            raise ValueError(f"question {self.id!r}: polarity {self.polarity!r} is not one of "
                             "'pass', 'inverted'")

    def event(self, passed: bool | None) -> bool | None:
        """Whether the claim's event happened, given a verdict's ``passed`` (None stays None)."""
        if passed is None:
            return None
        return passed if self.polarity == "pass" else not passed


LENS_ROLES = EXPERIMENTS["t2i_lens"].roles
KO_ROLES = EXPERIMENTS["knockout"].roles
REFDROP_ROLES = EXPERIMENTS["refdrop"].roles
PATCH_ROLES = EXPERIMENTS["patching"].roles

#: question-id prefix of a lens / patching variant: ``lens_padding.style``, ``patching_content.color``
VARIANT_SUFFIX = {"text": "", "text.padding": "_padding", "text.content": "_content"}
#: the release's leading phrase of the lens output label, per variant
_LENS_TOKENS = {"text": "with text tokens", "text.padding": "with ONLY text-padding tokens",
                "text.content": "with ONLY text-content tokens"}
#: the rest of the lens output label, per family (the release words it three ways)
_LENS_FROM = {"color": "patched in from a reference-conditioned i2i pass:",
              "style": "patched from a reference-conditioned i2i pass:",
              "identity": "patched from the reference-conditioned i2i pass:",
              "scene": "patched from the reference-conditioned i2i pass:"}
#: the release's action clause of the patching output label, per variant
_PATCH_ACTION = {"text": "with text-token activations patched", "text.padding": "with ONLY the text-padding tokens patched",
                 "text.content": "with ONLY the text-content tokens patched"}
_KO_CLAUSE = {
    "ko_text": "with the ref->text attention path completely blocked",
    "ko_text_padding": "with ref->text attention blocked ONLY at the Qwen3 text-padding positions",
    "ko_text_content": "with ref->text attention blocked ONLY at the Qwen3 text-content positions",
    "ko_image": "with the ref->image attention path completely blocked",
    "refdrop": "with ref->image attention blocked before a cutoff block and the reference removed "
               "from the cutoff block on (every attention path to and from it cut)",
}
_KO_REFERENCE = {"color": "solid color reference", "style": "clipart reference",
                 "identity": "reference photo of a person"}
_KO_BASELINE = {"color": "clean reference-conditioned i2i baseline",
                "style": "clean reference-conditioned i2i baseline",
                "identity": "clean reference-conditioned i2i baseline (this should look like "
                            "the person in Image 1)"}

_LENS = {
    "color": ("solid color reference", "text-to-image baseline (no patching) of the prompt",
              "Compared to Image 2, does Image 3 take on the predominant solid color of Image 1? "
              "Reply 1 if the color of Image 1 is now visibly present in Image 3 (and was not "
              "in Image 2).", "pass"),
    "style": ("clipart / cartoon reference", "clean text-to-image baseline",
              "Compared to Image 2, does Image 3 adopt a clipart / cartoon / illustrated / "
              "unrealistic style similar to Image 1? Look at the subject and the background / "
              "rest of the image - clipart-y style anywhere in the image counts as evidence. "
              "Reply 1 if Image 3 looks more clipart-like / less photographic than Image 2.",
              "pass"),
    "identity": ("reference photo of a person",
                 "text-to-image baseline of the same scene description",
                 "Focus on the person in Image 3. Is the person in Image 3 a recognizably "
                 "DIFFERENT individual (different face, hair, build, identity) from the person "
                 "in Image 1? Reply 1 if a viewer would say it is a different person; reply 0 "
                 "only if it is the same person.", "inverted"),
    "scene": ("reference image used to condition the source i2i pass",
              "clean text-to-image baseline of the prompt",
              "Compared to Image 2, does Image 3 contain ANY visible information drawn from "
              "Image 1 - things like colors, textures, layout, style, distinctive shapes, or "
              "specific subject features? Reply 1 if you can point to anything in Image 3 that "
              "came from Image 1 and was not in Image 2.", "pass"),
}

_KO_TEXT = {
    "color": "Compared to Image 2, has Image 3 LOST the predominant solid color of Image 1? "
             "Reply 1 if the color is significantly removed (color depended on ref->text).",
    "style": "Compared to Image 2, has Image 3 LOST the clipart / cartoon style of Image 1 and "
             "become more photographic / realistic? Reply 1 if Image 3 became more realistic "
             "when ref->text was blocked.",
    "identity": "Focus on the person in Image 3. Compared to Image 2, has Image 3 LOST the "
                "identity of the person in Image 1 - i.e. does the person in Image 3 look like "
                "a recognizably DIFFERENT individual (different face, hair, build) from the "
                "person in Image 1? Reply 1 if blocking ref->text destroyed the reference "
                "identity; reply 0 if Image 3 still looks like the same person as Image 1.",
}

_KO_IMAGE = {
    "color": "Compared to Image 2, does Image 3 STILL show the predominant solid color of "
             "Image 1? Reply 1 if the color is preserved (color survives blocking ref->image).",
    "style": "Compared to Image 2, does Image 3 STILL look clipart / cartoon-like (similar "
             "style to Image 1)? Look at the subject and the background / rest of the image - "
             "clipart-y style anywhere in the image counts as evidence. Reply 1 if the clipart "
             "style was preserved when ref->image was blocked.",
    "identity": "Focus on the person in Image 3. Does Image 3 STILL look like the same "
                "individual as Image 1 (same face, hair, build)? Reply 1 if the reference "
                "identity is preserved despite blocking ref->image; reply 0 if Image 3 now "
                "looks like a different person from Image 1.",
}

_PATCH = {
    "color": (("solid color reference for the SOURCE i2i pass",
               "solid color reference for the TARGET i2i pass",
               "clean i2i generation conditioned on Image 2 (no patching)"),
              "Compared to Image 3 (which should show the color of Image 2), does Image 4 take "
              "on the color of Image 1 (the source) instead? Reply 1 if Image 4 is more like "
              "Image 1's color than Image 2's."),
    "style": (("clipart SOURCE reference", "real-photo TARGET reference (same subject)",
               "clean i2i generation conditioned on Image 2"),
              "Compared to Image 3, has Image 4 become MORE clipart / cartoon / unrealistic in "
              "style (matching Image 1)? Look at the subject and the background / rest of the "
              "image - clipart-y style anywhere in the image counts as evidence. Reply 1 if "
              "Image 4 looks more clipart-like than Image 3."),
    "identity": (("photo of person A (SOURCE i2i reference)",
                  "photo of person B (TARGET i2i reference)",
                  "clean i2i generation conditioned on person B"),
                 "Focus on the person in Image 4. Does the person in Image 4 look more like "
                 "person A (Image 1, the source) than like person B (Image 2, the target)? "
                 "Reply 1 if A's identity transferred over."),
}


def _ko_text_variant(question: str, experiment: str) -> str:
    """Replace the one ``ref->text`` parenthetical by ``ref->text[padding|content]``."""
    if experiment == "ko_text":
        return question
    if question.count("ref->text") != 1:
        raise AssertionError(f"expected exactly one 'ref->text' in {question!r}")
    return question.replace("ref->text", f"ref->text[{experiment.rsplit('_', 1)[1]}]")


#: the end of the patching output label, per family (after the action clause)
_PATCH_FROM = {"color": "from the SOURCE i2i pass:", "style": "from the SOURCE clipart i2i pass:",
               "identity": "from person A's i2i pass:"}


def _build() -> dict[str, Question]:
    bank: list[Question] = []
    for family, (ref, base, text, polarity) in _LENS.items():
        for tokens, suffix in VARIANT_SUFFIX.items():
            bank.append(Question(f"lens{suffix}.{family}", family, "lens", SYSTEM_PROMPT, text, LENS_ROLES, polarity,
                                 (f"Image 1 - {ref}:", f"Image 2 - {base}:",
                                  f"Image 3 - same generation, but {_LENS_TOKENS[tokens]} {_LENS_FROM[family]}"),
                                 tokens=tokens))
    for experiment in (*EXPERIMENTS["knockout"].questions, *EXPERIMENTS["refdrop"].questions):
        texts = _KO_TEXT if experiment.startswith("ko_text") else _KO_IMAGE
        for family, text in texts.items():
            labels = (f"Image 1 - {_KO_REFERENCE[family]}:", f"Image 2 - {_KO_BASELINE[family]}:",
                      f"Image 3 - same i2i, but {_KO_CLAUSE[experiment]}:")
            kept = experiment in ("ko_image", "refdrop")  # "still preserved?" questions
            bank.append(Question(
                f"{experiment}.{family}", family, experiment, SYSTEM_PROMPT,
                text if kept else _ko_text_variant(text, experiment),
                kind_of_question(experiment).roles, "inverted" if kept else "pass", labels,
                PROJECT if experiment == "refdrop" else RELEASE if kept else PAPER))
    for family, (labels, text) in _PATCH.items():
        for tokens, suffix in VARIANT_SUFFIX.items():
            bank.append(Question(
                f"patching{suffix}.{family}", family, "patching", SYSTEM_PROMPT, text, PATCH_ROLES, "pass",
                tuple(f"Image {i} - {label}:" for i, label in enumerate(labels, 1))
                + (f"Image 4 - same target generation, but {_PATCH_ACTION[tokens]} {_PATCH_FROM[family]}",),
                tokens=tokens))
    return {q.id: q for q in bank}


_BANK = _build()
#: question id -> :class:`Question`, read-only (:func:`add_question` adds a new experiment kind's)
QUESTIONS: Mapping[str, Question] = MappingProxyType(_BANK)


def add_question(question: Question) -> Question:
    """Add a question for a newly registered experiment kind (its id must be new)."""
    if question.id in _BANK:
        raise ValueError(f"question {question.id!r} is already in the bank")
    _BANK[question.id] = question
    return question


def remove_question(question_id: str) -> None:
    """Remove a question :func:`add_question` added (a test's example, when it is done)."""
    _BANK.pop(question_id)


def get_question(question_id: str) -> Question:
    """The question with this id; the error lists every valid id."""
    try:
        return QUESTIONS[question_id]
    except (KeyError, TypeError):
        raise KeyError(f"unknown question id {question_id!r}; expected one of "
                       f"{sorted(QUESTIONS)}") from None
