"""Attention knockouts as diffusers attention processors that wrap the stock ones.

A knockout never edits weights and never monkey-patches ``forward``: the wrapper computes a
boolean ``[1, 1, S, S]`` mask (``True`` = may attend) for the current block and step, merges
it with any mask it was given, and calls the processor it wraps, which hands the mask to SDPA.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from mechinterp.engine.layout import TokenLayout


@dataclass(frozen=True)
class Edge:
    """One blocked edge set: queries at ``dest`` may not see keys at ``source`` (steps None = all)."""

    source: torch.Tensor
    dest: torch.Tensor
    steps: frozenset[int] | None
    label: str


def allowed_mask(edges: Sequence[Edge], seq_len: int, device=None) -> torch.Tensor:
    """Boolean ``[1, 1, S, S]`` mask with every edge in ``edges`` blocked.

    ``ValueError`` if some query would be left with no key at all (SDPA would return NaN).
    """
    allowed = torch.ones(seq_len, seq_len, dtype=torch.bool, device=device)
    for e in edges:
        allowed[e.dest.to(allowed.device).unsqueeze(1), e.source.to(allowed.device).unsqueeze(0)] = False
    empty = ~allowed.any(dim=1)
    if bool(empty.any()):
        labels = ", ".join(e.label for e in edges)
        raise ValueError(f"knockouts [{labels}] leave {int(empty.sum())} queries with no key to attend to")
    return allowed[None, None]


def merge_masks(mask: torch.Tensor, given: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """Combine our boolean mask with a mask the caller passed (boolean or additive float)."""
    if given is None:
        return mask
    if given.dtype == torch.bool:
        return mask & given
    return given + torch.zeros_like(given).masked_fill(~mask, float("-inf")).to(given.dtype)


class KnockoutRule:
    """The knockout edges of one block, resolved per step, with masks built once and reused."""

    def __init__(self, site: str, edges: Sequence[Edge], layout: TokenLayout, clock: Callable[[], int], fired: Counter):
        self.site = site
        self.edges = list(edges)
        self.layout = layout
        self.clock = clock
        self.fired = fired
        self._masks: dict[tuple[int, ...], torch.Tensor] = {}

    def mask_for_step(self, step: int, device) -> torch.Tensor | None:
        """Mask for ``step`` (``None`` when no edge is active then)."""
        active = tuple(i for i, e in enumerate(self.edges) if e.steps is None or step in e.steps)
        if not active:
            return None
        key = active
        if key not in self._masks:
            self._masks[key] = allowed_mask([self.edges[i] for i in active], self.layout.seq_len, device)
        for i in active:
            self.fired[(self.edges[i].label, self.site, step)] += 1
        return self._masks[key]

    def check_length(self, seq_len: int) -> None:
        """Fail loudly when the model's joint sequence does not match the layout."""
        if seq_len != self.layout.seq_len:
            raise RuntimeError(
                f"joint sequence at {self.site} has {seq_len} tokens but the edit's layout has "
                f"{self.layout.seq_len} (text {self.layout.text_len} + image {self.layout.n_image} + ref {self.layout.n_ref})"
            )


class DoubleKnockoutProcessor:
    """Wraps a double-stream processor ``(attn, hidden, encoder_hidden, mask, rotary)``."""

    def __init__(self, inner, rule: KnockoutRule):
        self.inner = inner
        self.rule = rule

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None, **kwargs):
        seq = hidden_states.shape[1] + (0 if encoder_hidden_states is None else encoder_hidden_states.shape[1])
        self.rule.check_length(seq)
        mask = self.rule.mask_for_step(self.rule.clock(), hidden_states.device)
        if mask is not None:
            attention_mask = merge_masks(mask, attention_mask, hidden_states.dtype)
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb, **kwargs)


class SingleKnockoutProcessor:
    """Wraps a single-stream processor ``(attn, hidden, mask, rotary)``."""

    def __init__(self, inner, rule: KnockoutRule):
        self.inner = inner
        self.rule = rule

    def __call__(self, attn, hidden_states, attention_mask=None, image_rotary_emb=None, **kwargs):
        self.rule.check_length(hidden_states.shape[1])
        mask = self.rule.mask_for_step(self.rule.clock(), hidden_states.device)
        if mask is not None:
            attention_mask = merge_masks(mask, attention_mask, hidden_states.dtype)
        return self.inner(attn, hidden_states, attention_mask, image_rotary_emb, **kwargs)
