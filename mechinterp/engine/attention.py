"""Attention knockouts as diffusers attention processors that wrap the stock ones.

A knockout never edits weights and never monkey-patches ``forward``: ``KnockoutProcessor``
replaces a block's processor and resolves, per block and step, which edges are blocked. It
then computes attention one of three ways (``mode``):

- ``"split"`` (the default through ``"auto"``): exact query splitting — queries grouped by
  their blocked key set, one unmasked attention call per group (``fast_attention.SplitPlan``);
- ``"flex"``: one ``flex_attention`` call with a ``BlockMask`` built once per layout and step set;
- ``"dense"``: the reference path — a boolean ``[1, 1, S, S]`` mask (``True`` = may attend)
  merged with any mask it was given and handed to the wrapped processor, which passes it to SDPA.

The fast paths reproduce the stock processors' maths, so they are used only when the wrapped
processor *is* a stock one and no other mask or keyword came with the call; anything else (a
user's custom processor, a nested knockout, a caller's mask) takes the dense path, so the
wrapped processor still sees every mask.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from diffusers.models.attention_dispatch import dispatch_attention_fn

from mechinterp.engine.fast_attention import (
    Blocked,
    SplitPlan,
    check_keys,
    finish,
    flex_attend,
    flex_available,
    flex_block_mask,
    is_stock,
    project,
)
from mechinterp.engine.layout import TokenLayout

MODES = ("auto", "split", "flex", "dense")


def check_mode(mode: str) -> str:
    """Validate a knockout mode; ``ValueError`` listing the valid ones otherwise."""
    if mode not in MODES:
        raise ValueError(f"unknown knockout mode {mode!r}; valid modes: {', '.join(MODES)}")
    if mode == "flex" and not flex_available():
        raise ValueError("knockout mode 'flex' needs torch.nn.attention.flex_attention, which this torch build lacks")
    return mode


@dataclass(frozen=True)
class Edge:
    """One blocked edge set: queries at ``dest`` may not see keys at ``source`` (steps None = all)."""

    source: torch.Tensor
    dest: torch.Tensor
    steps: frozenset[int] | None
    label: str


def allowed_mask(edges: Sequence[Edge | Blocked], seq_len: int, device=None) -> torch.Tensor:
    """Boolean ``[1, 1, S, S]`` mask with every edge in ``edges`` blocked.

    ``ValueError`` if some query would be left with no key at all (SDPA would return NaN).
    """
    allowed = torch.ones(seq_len, seq_len, dtype=torch.bool, device=device)
    for e in edges:
        allowed[e.dest.to(allowed.device).unsqueeze(1), e.source.to(allowed.device).unsqueeze(0)] = False
    check_keys(edges, seq_len)
    return allowed[None, None]


def merge_masks(mask: torch.Tensor, given: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """Combine our boolean mask with a mask the caller passed (boolean or additive float)."""
    if given is None:
        return mask
    if given.dtype == torch.bool:
        return mask & given
    return given + torch.zeros_like(given).masked_fill(~mask, float("-inf")).to(given.dtype)


#: plans shared across ``Intervene`` contexts (a suite runs the same knockout on many edits of one
#: layout); keyed by the blocked positions, so equal edge sets share one plan
_PLAN_CACHE: OrderedDict = OrderedDict()
_PLAN_CACHE_SIZE = 256


def _positions_key(edges: Sequence[Edge | Blocked]) -> tuple:
    """The positions ``edges`` block, as hashable bytes (equal edge sets share plans and batch rows)."""
    return tuple((e.source.numpy().tobytes(), e.dest.numpy().tobytes()) for e in edges)


def _build_plan(kind: str, blocked: list[Blocked], seq_len: int, device):
    if kind == "dense":  # S x S masks are large (75 MB at 8,704 tokens): never kept past their context
        return allowed_mask(blocked, seq_len, device)
    key = (kind, seq_len, str(device), _positions_key(blocked))
    if key in _PLAN_CACHE:
        _PLAN_CACHE.move_to_end(key)
        return _PLAN_CACHE[key]
    with torch.inference_mode(False):  # shared plans must hold normal tensors (autograd runs reuse them)
        if kind == "split":
            plan = SplitPlan(blocked, seq_len)
        else:  # validates as SplitPlan does (at most 62 edges, no query left without keys)
            plan = flex_block_mask(blocked, seq_len, device)
    _PLAN_CACHE[key] = plan
    while len(_PLAN_CACHE) > _PLAN_CACHE_SIZE:
        _PLAN_CACHE.popitem(last=False)
    return plan


def _edge_key(edges: Sequence[Edge]) -> tuple:
    """What makes two samples' edge lists block the same positions at the same steps."""
    return _positions_key(edges), tuple(e.steps for e in edges)


@dataclass(frozen=True)
class Active:
    """The edges one set of samples blocks at one step: ``blocked`` (empty when all are vacuous on
    this sequence), ``key`` for its plan, and the batch rows it applies to (``None`` = every row)."""

    key: tuple
    blocked: list[Blocked]
    samples: torch.Tensor | None


class KnockoutRule:
    """The knockout edges of one block, resolved per step and sequence length, plans built once.

    ``short`` is the number of trailing (reference) tokens a truncating reference drop may have
    removed before this block: the sequence is then ``layout.seq_len - short`` long, and edges
    are restricted to the positions that remain.

    ``samples`` (a batch whose prompts place token groups differently) gives each batch row its own
    edge list, each edge the same knockout at that row's positions; rows whose lists block the same
    positions share one plan. ``None``: every row uses ``edges``.
    """

    def __init__(self, site: str, edges: Sequence[Edge], layout: TokenLayout, clock: Callable[[], int], fired: Counter,
                 short: int = 0, samples: Sequence[Sequence[Edge]] | None = None):
        self.site = site
        self.edges = list(edges)
        self.layout = layout
        self.clock = clock
        self.fired = fired
        self.short = short
        self.n_samples = None if samples is None else len(samples)
        self._variants: list[tuple[list[Edge], torch.Tensor | None]] = [(self.edges, None)]
        if samples is not None:
            rows: dict[tuple, list[int]] = {}
            lists: dict[tuple, list[Edge]] = {}
            for i, sample in enumerate(samples):
                if len(sample) != len(self.edges):
                    raise ValueError(f"{site}: sample {i} has {len(sample)} knockout edges, expected {len(self.edges)}")
                key = _edge_key(sample)
                rows.setdefault(key, []).append(i)
                lists.setdefault(key, list(sample))
            if len(rows) > 1:
                self._variants = [(lists[k], torch.tensor(r, dtype=torch.long)) for k, r in rows.items()]
        self._blocked: dict[tuple, list[Active]] = {}
        self._plans: dict[tuple, object] = {}

    def blocked(self, step: int, seq_len: int) -> list[Active] | None:
        """The edges active at ``step`` on a ``seq_len`` sequence, one ``Active`` per set of batch rows
        that block alike (``None`` when no edge is active); counts firing once per call."""
        active = tuple(i for i, e in enumerate(self.edges) if e.steps is None or step in e.steps)
        if not active:
            return None
        for i in active:
            self.fired[(self.edges[i].label, self.site, step)] += 1
        key = (active, seq_len)
        if key not in self._blocked:
            self._blocked[key] = [Active((v, *key), self._restrict(edges, active, seq_len), rows)
                                  for v, (edges, rows) in enumerate(self._variants)]
        return self._blocked[key]

    @staticmethod
    def _restrict(edges: list[Edge], active: tuple[int, ...], seq_len: int) -> list[Blocked]:
        out = []
        for i in active:
            e = edges[i]
            src, dst = e.source[e.source < seq_len], e.dest[e.dest < seq_len]
            if src.numel() and dst.numel():  # an edge into a dropped reference is vacuous
                out.append(Blocked(src, dst, e.label))
        return out

    def plan(self, kind: str, active: Active, seq_len: int, device):
        """The ``dense`` mask, ``split`` plan or ``flex`` block mask for one active edge set (cached)."""
        cache_key = (kind, active.key, str(device))
        if cache_key not in self._plans:
            self._plans[cache_key] = _build_plan(kind, active.blocked, seq_len, device) if active.blocked else None
        return self._plans[cache_key]

    def check_length(self, seq_len: int, batch: int | None = None) -> None:
        """Fail loudly when the model's joint sequence (or batch) does not match the layout (or samples)."""
        if self.n_samples is not None and batch is not None and batch != self.n_samples:
            raise RuntimeError(f"{self.site}: batch of {batch} rows but knockouts were planned for {self.n_samples} samples")
        if seq_len == self.layout.seq_len or (self.short and seq_len == self.layout.seq_len - self.short):
            return
        raise RuntimeError(
            f"joint sequence at {self.site} has {seq_len} tokens but the edit's layout has "
            f"{self.layout.seq_len} (text {self.layout.text_len} + image {self.layout.n_image} + ref {self.layout.n_ref})"
        )


_DOUBLE_ARGS = ("encoder_hidden_states", "attention_mask", "image_rotary_emb")
_SINGLE_ARGS = ("attention_mask", "image_rotary_emb")


class KnockoutProcessor:
    """Wraps a double-stream ``(attn, hidden, encoder_hidden, mask, rotary)`` or single-stream
    ``(attn, hidden, mask, rotary)`` processor and applies the rule's knockouts."""

    def __init__(self, inner, rule: KnockoutRule, double: bool, mode: str = "auto"):
        self.inner = inner
        self.rule = rule
        self.double = double
        self.mode = check_mode(mode)

    def _fast(self, mask, kwargs) -> str | None:
        if self.mode == "dense" or mask is not None or kwargs or not is_stock(self.inner):
            return None
        return "flex" if self.mode == "flex" else "split"

    @torch.compiler.disable
    def __call__(self, attn, hidden_states, *args, **kwargs):
        """Run the block's attention with this step's knockouts (eager under ``torch.compile``:
        the rule's Python bookkeeping must run every call, and compiled blocks graph-break here)."""
        names = _DOUBLE_ARGS if self.double else _SINGLE_ARGS
        given = dict(zip(names, args))
        given.update({n: kwargs.pop(n) for n in names if n in kwargs})
        enc = given.get("encoder_hidden_states")
        mask, rotary = given.get("attention_mask"), given.get("image_rotary_emb")
        seq_len = hidden_states.shape[1] + (0 if enc is None else enc.shape[1])
        self.rule.check_length(seq_len, hidden_states.shape[0])
        found = self.rule.blocked(self.rule.clock(), seq_len)
        if found is not None and not any(a.blocked for a in found):
            found = None
        fast = self._fast(mask, kwargs)
        if found is not None and fast is not None:
            q, k, v, mlp = project(attn, hidden_states, enc, rotary)
            out = None if len(found) == 1 else torch.empty_like(q)
            for active in found:
                rows = active.samples
                qs, ks, vs = (q, k, v) if rows is None else (q[rows], k[rows], v[rows])
                plan = self.rule.plan(fast, active, seq_len, q.device)
                if plan is None:  # these rows block nothing here: plain attention
                    part = dispatch_attention_fn(qs, ks, vs, backend=getattr(self.inner, "_attention_backend", None),
                                                 parallel_config=getattr(self.inner, "_parallel_config", None))
                elif fast == "flex":
                    part = flex_attend(qs, ks, vs, plan)
                else:
                    part = plan.attend(qs, ks, vs, backend=getattr(self.inner, "_attention_backend", None),
                                       parallel_config=getattr(self.inner, "_parallel_config", None))
                if out is None:
                    out = part
                else:
                    out[rows.to(q.device)] = part.to(q.dtype)
            return finish(attn, out.to(q.dtype), enc, mlp)
        if found is not None:
            dense = self._dense(found, seq_len, hidden_states)
            mask = merge_masks(dense, mask, hidden_states.dtype)
        if self.double:
            return self.inner(attn, hidden_states, enc, mask, rotary, **kwargs)
        return self.inner(attn, hidden_states, mask, rotary, **kwargs)

    def _dense(self, found: list[Active], seq_len: int, hidden_states) -> torch.Tensor:
        """The boolean mask of this step: ``[1, 1, S, S]``, or ``[B, 1, S, S]`` when rows block differently."""
        device = hidden_states.device
        if len(found) == 1:
            return self.rule.plan("dense", found[0], seq_len, device)
        mask = torch.ones(hidden_states.shape[0], 1, seq_len, seq_len, dtype=torch.bool, device=device)
        for active in found:
            plan = self.rule.plan("dense", active, seq_len, device)
            if plan is not None:
                mask[active.samples.to(device)] = plan[0]
        return mask
