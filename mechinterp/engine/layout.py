"""Token layout: which positions of the joint sequence ``[text | image | ref]`` form each group.

Groups (the authors' definitions, BRIEF.md):

- ``text``: all text positions (the model's full text length, 512 on FLUX.2-klein);
- ``text.content``: the contiguous token span of the instruction itself (edge whitespace excluded);
- ``text.padding``: every other text position (chat scaffolding included);
- ``text.template`` / ``text.pad``: the split of padding into chat scaffolding
  (attention mask 1) and tokenizer padding (attention mask 0);
- ``image``: the noise (output image) tokens; ``ref``: the reference image tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

GROUPS = ("text", "text.content", "text.padding", "text.template", "text.pad", "image", "ref")
TEXT_GROUPS = ("text", "text.content", "text.padding", "text.template", "text.pad")

_SENTINEL = "\u241fMECHINTERP\u241f"
MAX_REFERENCE_AREA = 1024 * 1024  # the pipeline resizes larger references to this area


def check_group(group: str) -> str:
    """Validate a token-group name; ``ValueError`` listing the valid groups otherwise."""
    if group not in GROUPS:
        raise ValueError(f"unknown token group {group!r}; valid groups: {', '.join(GROUPS)}")
    return group


@dataclass(frozen=True, eq=False)
class TokenLayout:
    """Index sets of the joint sequence for one edit; ``layout[group]`` is a sorted LongTensor."""

    text_len: int
    n_image: int
    n_ref: int
    text_ids: tuple[int, ...] = ()
    groups: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def seq_len(self) -> int:
        """Length of the joint sequence ``text + image + ref``."""
        return self.text_len + self.n_image + self.n_ref

    def __getitem__(self, group: str) -> torch.Tensor:
        check_group(group)
        if group == "ref" and self.n_ref == 0:
            raise ValueError("token group 'ref' was asked for, but this edit has no reference image")
        return self.groups[group]

    def __contains__(self, group: str) -> bool:
        return group in self.groups and (group != "ref" or self.n_ref > 0)

    def same_text(self, other: "TokenLayout") -> bool:
        """Whether two layouts have identical text tokens (needed to patch between edits)."""
        return self.text_len == other.text_len and self.text_ids == other.text_ids


def _span(start: int, stop: int) -> torch.Tensor:
    return torch.arange(start, stop, dtype=torch.long)


def text_groups(tokenizer, prompt: str, instruction: str, text_len: int) -> tuple[dict[str, torch.Tensor], tuple[int, ...]]:
    """Text-group positions for ``prompt`` exactly as the FLUX.2 pipeline tokenizes it.

    ``text.content`` is every token that overlaps the instruction's characters in the prompt,
    leading and trailing whitespace excluded: the span the authors' resolver finds, found from
    character offsets so that it also holds where theirs fails (inner newlines, text that NFC
    changes, a character split over byte-level tokens). A blank instruction has no content.
    Raises ``ValueError`` when the instruction is not in the prompt or the templated prompt
    is longer than ``text_len`` tokens (the pipeline would silently truncate it).
    """
    if instruction and instruction not in prompt:
        raise ValueError(f"instruction {instruction!r} not found in prompt {prompt!r}")
    render = lambda content: tokenizer.apply_chat_template(  # noqa: E731
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    text = render(prompt)
    prompt_at = render(_SENTINEL).index(_SENTINEL)
    full = tokenizer(text, truncation=False)["input_ids"]
    if len(full) > text_len:
        raise ValueError(
            f"prompt {prompt[:60]!r}{'...' if len(prompt) > 60 else ''} is {len(full)} tokens after the chat "
            f"template, longer than the model's text length of {text_len} tokens"
        )
    enc = tokenizer(text, padding="max_length", truncation=True, max_length=text_len, return_offsets_mapping=True)
    ids, attn, offsets = enc["input_ids"], enc["attention_mask"], enc["offset_mapping"]
    content: list[int] = []
    core = instruction.strip()
    if core:
        # the instruction's own characters, edge whitespace left out (the authors' content span)
        a = prompt_at + prompt.index(instruction) + len(instruction) - len(instruction.lstrip())
        b = a + len(core)
        content = [i for i, ((s, e), m) in enumerate(zip(offsets, attn)) if m and s < b and e > a]
        if not content:
            raise ValueError(f"instruction {instruction!r} maps to no tokens of the templated prompt")
    pad = [i for i, m in enumerate(attn) if not m]
    content_set = set(content)
    template = [i for i, m in enumerate(attn) if m and i not in content_set]
    as_t = lambda xs: torch.tensor(sorted(xs), dtype=torch.long)  # noqa: E731
    groups = {
        "text": _span(0, text_len),
        "text.content": as_t(content),
        "text.padding": as_t(template + pad),
        "text.template": as_t(template),
        "text.pad": as_t(pad),
    }
    return groups, tuple(int(i) for i in ids)


def reference_tokens(size: tuple[int, int], multiple_of: int) -> int:
    """Number of tokens a reference image of ``size=(w, h)`` becomes, as the pipeline prepares it.

    ``Flux2KleinPipeline`` scales a reference larger than 1024² pixels to that area (aspect
    kept, each side truncated: ``int(side * sqrt(area / (w * h)))``), then floors each side to
    ``multiple_of`` (the VAE factor × the 2×2 patch; 16 on FLUX.2-klein): a 1872×2368
    reference becomes 896×1136, i.e. 3,976 tokens.
    """
    w, h = size
    if w * h > MAX_REFERENCE_AREA:
        scale = math.sqrt(MAX_REFERENCE_AREA / (w * h))
        w, h = int(w * scale), int(h * scale)
    w, h = (w // multiple_of) * multiple_of, (h // multiple_of) * multiple_of
    if w == 0 or h == 0:
        raise ValueError(f"reference image of size {size} is smaller than one {multiple_of}x{multiple_of} patch")
    return (w // multiple_of) * (h // multiple_of)


def build_layout(
    tokenizer, prompt: str, instruction: str, text_len: int, height: int, width: int, reference_size, multiple_of: int
) -> TokenLayout:
    """The full joint-sequence layout of one edit."""
    if height % multiple_of or width % multiple_of:
        raise ValueError(f"height and width must be multiples of {multiple_of} for this model, got {height}x{width}")
    groups, ids = text_groups(tokenizer, prompt, instruction, text_len)
    n_image = (height // multiple_of) * (width // multiple_of)
    n_ref = 0 if reference_size is None else reference_tokens(reference_size, multiple_of)
    groups["image"] = _span(text_len, text_len + n_image)
    groups["ref"] = _span(text_len + n_image, text_len + n_image + n_ref)
    return TokenLayout(text_len=text_len, n_image=n_image, n_ref=n_ref, text_ids=ids, groups=groups)
