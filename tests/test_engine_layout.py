"""Token layouts and the site table: properties (hypothesis) and the errors users see."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import mechinterp as mi
from mechinterp.engine.sites import SiteTable
from mechinterp.testing.tiny import build_tokenizer

WORDS = ["draw", "a", "ball", "car", "in", "this", "color", "red", "make", "the", "vase", "style", "zebra", "Ünïcode", "42", "!"]
TOKENIZER = build_tokenizer()


@given(n_double=st.integers(0, 10), n_single=st.integers(0, 30), data=st.data())
def test_site_names_and_flat_indices_agree(n_double, n_single, data):
    table = SiteTable(n_double, n_single)
    assert table.names[0] == "embed"
    assert len(table.names) == 1 + n_double + n_single
    for flat, site in enumerate(table.blocks):
        assert table.resolve(flat) is site
        assert table.resolve(site.name).flat == flat
        assert table.resolve(str(flat)) is site
    bad = data.draw(st.one_of(st.integers(n_double + n_single, 200), st.integers(-50, -1),
                              st.text(min_size=1, max_size=12).filter(lambda s: s.strip() not in table.names and not s.strip().isdigit())))
    with pytest.raises(ValueError, match="unknown site"):
        table.resolve(bad)


def test_klein_numbering():
    table = SiteTable(8, 24)
    assert table.resolve(7).name == "double.7"
    assert table.resolve(17).name == "single.9"
    assert table.names[1:3] == ["double.0", "double.1"] and table.names[-1] == "single.23"


def test_unknown_site_error_lists_valid_sites(tiny_model):
    with pytest.raises(ValueError) as err:
        tiny_model.table.resolve("single.9")
    assert "'single.9'" in str(err.value) and "'single.0'..'single.1'" in str(err.value) and "'embed'" in str(err.value)
    with pytest.raises(ValueError, match="unknown site"):
        tiny_model.generate(mi.Edit("x", height=64, width=64), capture=["double.9"])


@given(
    prefix=st.lists(st.sampled_from(WORDS), max_size=3),
    instruction=st.lists(st.sampled_from(WORDS), min_size=1, max_size=6),
    suffix=st.lists(st.sampled_from(WORDS), max_size=3),
    with_ref=st.booleans(),
)
def test_layout_partitions_the_sequence(prefix, instruction, suffix, with_ref):
    from mechinterp.engine.layout import build_layout

    instr = " ".join(instruction)
    prompt = " ".join([*prefix, instr, *suffix])
    lay = build_layout(TOKENIZER, prompt, instr, 96, 64, 32, (32, 64) if with_ref else None, 4)
    text = set(lay["text"].tolist())
    content, template, pad = (set(lay[g].tolist()) for g in ("text.content", "text.template", "text.pad"))
    assert text == set(range(96))
    assert content | template | pad == text and not (content & template) and not (content & pad) and not (template & pad)
    assert set(lay["text.padding"].tolist()) == template | pad
    c = sorted(content)
    assert c == list(range(c[0], c[-1] + 1))  # contiguous
    decoded = TOKENIZER.decode([lay.text_ids[i] for i in c])
    assert instr in decoded and len(decoded) <= len(prompt) + 2
    assert lay["image"].tolist() == list(range(96, 96 + 128))
    for g in lay.groups.values():
        assert g.dtype == torch.long and torch.all(g[1:] > g[:-1])
    if with_ref:
        assert lay["ref"].tolist() == list(range(96 + 128, 96 + 256)) and lay.seq_len == 96 + 256
    else:
        with pytest.raises(ValueError, match="no reference"):
            lay["ref"]


def test_layout_matches_what_the_pipeline_tokenizes(tiny_model, edit):
    lay = tiny_model.layout(edit)
    ids = tiny_model.pipe.tokenizer.apply_chat_template(
        [{"role": "user", "content": edit.text}], tokenize=False, add_generation_prompt=True, enable_thinking=False)
    enc = tiny_model.pipe.tokenizer(ids, padding="max_length", max_length=48, truncation=True)
    assert list(lay.text_ids) == enc["input_ids"]
    assert set(lay["text.pad"].tolist()) == {i for i, m in enumerate(enc["attention_mask"]) if m == 0}


def test_layout_reports_real_sequence_lengths(tiny_model, edit):
    lay = tiny_model.layout(edit)
    g = tiny_model.generate(edit, capture=[mi.Capture("single.1", "image"), mi.Capture("single.1", "ref")])
    assert g.captures[("single.1", 0)].shape[0] == lay.n_ref  # last capture at the key wins: ref
    assert lay.n_image == lay.n_ref == 256


def test_empty_instruction_has_no_content(tiny_model):
    lay = tiny_model.layout(mi.Edit("", height=64, width=64))
    assert lay["text.content"].numel() == 0
    assert lay["text.padding"].tolist() == list(range(48))


def test_instruction_not_in_prompt(tiny_model):
    with pytest.raises(ValueError, match="instruction 'draw a hat' not found in prompt"):
        mi.Edit("draw a hat", prompt="please draw a ball")


def test_prompt_longer_than_text_length(tiny_model):
    long = " ".join(["zebra"] * 60)
    with pytest.raises(ValueError, match=r"tokens after the chat template, longer than the model's text length of 48"):
        tiny_model.layout(mi.Edit(long, height=64, width=64))


def test_unknown_group_lists_valid_groups():
    with pytest.raises(ValueError, match="unknown token group 'text.padd'; valid groups: text, text.content"):
        mi.Knockout("ref", "text.padd")


def test_size_must_fit_the_patch_grid(tiny_model):
    with pytest.raises(ValueError, match="multiples of 4"):
        tiny_model.layout(mi.Edit("x", height=62, width=64))


def test_unreadable_reference_image(tmp_path):
    bad = tmp_path / "ref.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"ref.png' is not a readable image"):
        mi.Edit("x", reference=bad)
    with pytest.raises(ValueError, match="does not exist"):
        mi.Edit("x", reference=tmp_path / "missing.png")
