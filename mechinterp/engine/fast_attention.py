"""Knockout attention without dense masks: exact query splitting, and a flex-attention option.

A dense ``[S, S]`` mask forces SDPA onto its slow (math / memory-efficient-with-bias) kernels.
A knockout has far more structure than a general mask: every query in a token group is blocked
from the same set of key groups. So the queries fall into a handful of classes by *which*
edges they are the destination of, and each class attends to one fixed key set. Attention for
each class is an ordinary, unmasked attention call over its allowed keys — exact, and fast on
every backend (flash, cuDNN, efficient). ``SplitPlan`` holds those classes; ``flex_block_mask``
builds the same rule as a flex-attention ``BlockMask``.

``project`` and ``finish`` are the stock FLUX.2 processors' projection and output halves
(double and single blocks), so the fast path computes exactly what the stock processor does
around the attention call.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.embeddings import apply_rotary_emb
from diffusers.models.transformers.transformer_flux2 import (
    Flux2AttnProcessor,
    Flux2ParallelSelfAttnProcessor,
    _get_qkv_projections,
)

from mechinterp.engine.rows import Rows

_log = logging.getLogger(__name__)

#: processors whose maths ``project``/``finish`` reproduce; anything else keeps the dense-mask path
STOCK_PROCESSORS = (Flux2AttnProcessor, Flux2ParallelSelfAttnProcessor)


def is_stock(processor) -> bool:
    """Whether ``processor`` is exactly a stock FLUX.2 processor (subclasses may change the maths)."""
    return type(processor) in STOCK_PROCESSORS


def project(attn, hidden_states, encoder_hidden_states, image_rotary_emb):
    """Query, key, value ``[B, S, H, D]`` of the joint sequence, and the single block's MLP branch.

    Mirrors ``Flux2AttnProcessor`` (double: text stream first) and
    ``Flux2ParallelSelfAttnProcessor`` (single: fused QKV + MLP input projection).
    """
    mlp = None
    if hasattr(attn, "to_qkv_mlp_proj"):
        h = attn.to_qkv_mlp_proj(hidden_states)
        qkv_dim, mlp_dim = 3 * attn.inner_dim, attn.mlp_hidden_dim * attn.mlp_mult_factor
        local_qkv = h.shape[-1] * qkv_dim // (qkv_dim + mlp_dim)
        qkv, mlp = torch.split(h, [local_qkv, h.shape[-1] - local_qkv], dim=-1)
        q, k, v = qkv.chunk(3, dim=-1)
        enc = None
    else:
        q, k, v, eq, ek, ev = _get_qkv_projections(attn, hidden_states, encoder_hidden_states)
        enc = (eq, ek, ev) if attn.added_kv_proj_dim is not None else None
    q, k, v = (t.unflatten(-1, (-1, attn.head_dim)) for t in (q, k, v))
    q, k = attn.norm_q(q), attn.norm_k(k)
    if enc is not None:
        eq, ek, ev = (t.unflatten(-1, (-1, attn.head_dim)) for t in enc)
        eq, ek = attn.norm_added_q(eq), attn.norm_added_k(ek)
        q, k, v = torch.cat([eq, q], dim=1), torch.cat([ek, k], dim=1), torch.cat([ev, v], dim=1)
    if image_rotary_emb is not None:
        q = apply_rotary_emb(q, image_rotary_emb, sequence_dim=1)
        k = apply_rotary_emb(k, image_rotary_emb, sequence_dim=1)
    return q, k, v, mlp


def finish(attn, out, encoder_hidden_states, mlp):
    """The stock processors' output half: ``out`` is the attention result ``[B, S, H, D]``."""
    out = out.flatten(2, 3)
    if mlp is not None:  # single block: parallel MLP, fused output projection
        return attn.to_out(torch.cat([out, attn.mlp_act_fn(mlp)], dim=-1))
    if encoder_hidden_states is not None:
        n_txt = encoder_hidden_states.shape[1]
        enc, out = out.split_with_sizes([n_txt, out.shape[1] - n_txt], dim=1)
        return attn.to_out[1](attn.to_out[0](out)), attn.to_add_out(enc)
    return attn.to_out[1](attn.to_out[0](out))


@dataclass(frozen=True)
class Blocked:
    """One blocked edge set on a sequence: queries ``dest`` may not see keys ``source``."""

    source: torch.Tensor
    dest: torch.Tensor
    label: str = ""


def _signatures(edges: Sequence[Blocked], seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per position, bitmasks of the edges it is a destination of / a source of (62 edges at most)."""
    if len(edges) > 62:
        raise ValueError(f"at most 62 knockout edges per block are supported, got {len(edges)}")
    dest_sig = torch.zeros(seq_len, dtype=torch.int64)
    src_sig = torch.zeros(seq_len, dtype=torch.int64)
    for i, e in enumerate(edges):
        dest_sig[e.dest] |= 1 << i
        src_sig[e.source] |= 1 << i
    return dest_sig, src_sig


def check_keys(edges: Sequence[Blocked], seq_len: int) -> None:
    """``ValueError`` when ``edges`` leave some query with no key at all (its attention would be NaN).

    Queries are grouped by the edges they are a destination of; a group keeps a key unless that
    key is a source of one of those edges. Any number of edges (the dense path has no 62 limit).
    """
    if not edges:
        return
    dest = torch.zeros(seq_len, len(edges), dtype=torch.bool)
    src = torch.zeros(len(edges), seq_len, dtype=torch.bool)
    for i, e in enumerate(edges):
        dest[e.dest.cpu(), i] = True
        src[i, e.source.cpu()] = True
    classes, inverse = torch.unique(dest, dim=0, return_inverse=True)
    keyless = ((classes.float() @ src.float()) > 0).all(dim=1)  # [n_classes]: every key blocked
    if bool(keyless.any()):
        labels = ", ".join(e.label for e in edges)
        raise ValueError(f"knockouts [{labels}] leave {int(keyless[inverse].sum())} queries with no key to attend to")


class SplitPlan:
    """Queries grouped by their blocked key set; one unmasked attention call per group.

    ``ValueError`` when some query would be left with no key (masked SDPA would return NaN).
    """

    def __init__(self, edges: Sequence[Blocked], seq_len: int):
        self.seq_len = seq_len
        self.edges = list(edges)
        dest_sig, src_sig = _signatures(edges, seq_len)
        check_keys(edges, seq_len)
        self.groups: list[tuple[Rows, Rows | None]] = []
        for sig in torch.unique(dest_sig).tolist():
            queries = torch.nonzero(dest_sig == sig).flatten()
            if sig == 0:
                self.groups.append((Rows(queries), None))
                continue
            keys = torch.nonzero((src_sig & sig) == 0).flatten()  # never empty: check_keys passed
            self.groups.append((Rows(queries), None if keys.numel() == seq_len else Rows(keys)))
        self.groups.sort(key=lambda g: int(g[0].index[0]))
        order = torch.cat([q.index for q, _ in self.groups])
        in_order = bool((order == torch.arange(seq_len)).all())
        self.inverse = None if in_order else Rows(torch.argsort(order))

    def attend(self, q, k, v, *, backend=None, parallel_config=None) -> torch.Tensor:
        """Exact knockout attention of ``[B, S, H, D]`` tensors, as ``[B, S, H, D]``."""
        parts = []
        for queries, keys in self.groups:
            qg = queries.take(q)
            kg, vg = (k, v) if keys is None else (keys.take(k), keys.take(v))
            parts.append(dispatch_attention_fn(qg, kg, vg, backend=backend, parallel_config=parallel_config))
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return out if self.inverse is None else self.inverse.take(out)


def flex_available() -> bool:
    """Whether ``torch.nn.attention.flex_attention`` can be imported in this build."""
    try:
        from torch.nn.attention import flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


#: the backend that compiles ``flex_attention`` per device type; a device type not named runs the
#: uncompiled reference kernel (on the CPU inductor's flex kernel takes minutes to build)
FLEX_BACKENDS: dict[str, object] = {"cuda": "inductor"}
_FLEX_WRAPPERS: dict[str, object] = {}  # device type -> the one compiled wrapper, built on first use
#: what the flex path did in this process: calls, graphs compiled during them, fall-backs to the
#: uncompiled kernel past torch's recompile limit (each one also warned)
FLEX_STATS = {"calls": 0, "compiles": 0, "fallbacks": 0}


class FlexFallbackWarning(RuntimeWarning):
    """``flex_attention`` ran uncompiled because torch hit its recompile limit (slow and memory-hungry)."""


def set_flex_backend(device_type: str, backend) -> None:
    """Compile flex knockouts on ``device_type`` with ``backend`` (``None``: run them uncompiled).

    Why: on CUDA the default (inductor) fuses the mask into the attention kernel; on the CPU the
    tests compile with a cheap backend (``"eager"``, a counting one) to check compiles per shape.
    """
    if backend is None:
        FLEX_BACKENDS.pop(device_type, None)
    else:
        FLEX_BACKENDS[device_type] = backend
    _FLEX_WRAPPERS.pop(device_type, None)


def flex_stats() -> dict:
    """A copy of ``FLEX_STATS`` (calls, compiles, fallbacks): the bench records it per phase."""
    return dict(FLEX_STATS)


def _flex_wrapper(device_type: str):
    """The one compiled ``flex_attention`` of ``device_type`` (``None`` when it runs uncompiled)."""
    backend = FLEX_BACKENDS.get(device_type)
    if backend is None:
        return None
    if device_type not in _FLEX_WRAPPERS:
        from torch.nn.attention.flex_attention import flex_attention

        _FLEX_WRAPPERS[device_type] = torch.compile(flex_attention, dynamic=False, backend=backend)
    return _FLEX_WRAPPERS[device_type]


def _signature_mask(dest_sig: torch.Tensor, src_sig: torch.Tensor):
    """The ``mask_mod`` of a knockout: query ``q`` may see key ``k`` unless one of ``q``'s
    destination edges has ``k`` as a source. The same code for every knockout; the edges live only
    in the two captured tensors, which torch.compile lifts to graph inputs (no recompile per mask)."""

    def allowed(b, h, q_idx, kv_idx):
        return (dest_sig[q_idx] & src_sig[kv_idx]) == 0

    return allowed


def flex_block_mask(edges: Sequence[Blocked], seq_len: int, device):
    """A flex-attention ``BlockMask`` blocking ``edges`` (callers cache it per layout and step set:
    ``attention._build_plan``).

    ``ValueError`` when some query would be left with no key (as ``SplitPlan``).
    """
    from torch.nn.attention.flex_attention import create_block_mask

    dest_sig, src_sig = _signatures(edges, seq_len)
    check_keys(edges, seq_len)
    allowed = _signature_mask(dest_sig.to(device), src_sig.to(device))
    return create_block_mask(allowed, B=None, H=None, Q_LEN=seq_len, KV_LEN=seq_len, device=device)


def flex_attend(q, k, v, block_mask) -> torch.Tensor:
    """Flex attention of ``[B, S, H, D]`` tensors under ``block_mask``, compiled where
    ``FLEX_BACKENDS`` names the device type (CUDA by default), once per shape and dtype.

    Past torch's recompile limit torch would silently run the uncompiled kernel (2-5x slower,
    GBs more memory at 8,704 tokens); here that is a ``FlexFallbackWarning``, logged and counted
    in ``FLEX_STATS["fallbacks"]``, and then the uncompiled kernel runs.
    """
    from torch.nn.attention.flex_attention import flex_attention

    # one memory layout for every block: double blocks concatenate q/k/v, single blocks slice a fused
    # projection, and a stride difference alone would be a second compile
    args = tuple(t.transpose(1, 2).contiguous() for t in (q, k, v))
    FLEX_STATS["calls"] += 1
    fn = _flex_wrapper(q.device.type)
    if fn is None:
        return flex_attention(*args, block_mask=block_mask).transpose(1, 2)
    from torch._dynamo.exc import FailOnRecompileLimitHit
    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]  # graphs dynamo compiles inside this call are ours
    try:
        with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
            out = fn(*args, block_mask=block_mask)
        FLEX_STATS["compiles"] += counters["stats"]["unique_graphs"] - graphs
    except FailOnRecompileLimitHit:
        FLEX_STATS["fallbacks"] += 1
        msg = (f"flex_attention hit torch's recompile limit ({torch._dynamo.config.recompile_limit}) at q "
               f"{tuple(q.shape)} {q.dtype}: running it uncompiled (slow); fallbacks so far: {FLEX_STATS['fallbacks']}")
        _log.warning(msg)
        warnings.warn(msg, FlexFallbackWarning, stacklevel=2)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "flex_attention called without torch.compile")
            out = flex_attention(*args, block_mask=block_mask)
    return out.transpose(1, 2)
