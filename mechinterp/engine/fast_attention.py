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


_COMPILED_FLEX = {}


def flex_block_mask(edges: Sequence[Blocked], seq_len: int, device):
    """A flex-attention ``BlockMask`` blocking ``edges`` (built once per layout and step set).

    ``ValueError`` when some query would be left with no key (as ``SplitPlan``).
    """
    from torch.nn.attention.flex_attention import create_block_mask

    dest_sig, src_sig = _signatures(edges, seq_len)
    check_keys(edges, seq_len)
    dest_sig, src_sig = dest_sig.to(device), src_sig.to(device)

    def allowed(b, h, q_idx, kv_idx):
        return (dest_sig[q_idx] & src_sig[kv_idx]) == 0

    return create_block_mask(allowed, B=None, H=None, Q_LEN=seq_len, KV_LEN=seq_len, device=device)


def flex_attend(q, k, v, block_mask) -> torch.Tensor:
    """Flex attention of ``[B, S, H, D]`` tensors under ``block_mask`` (compiled on CUDA)."""
    from torch.nn.attention.flex_attention import flex_attention

    fn = flex_attention
    if q.device.type == "cuda":
        fn = _COMPILED_FLEX.setdefault("cuda", torch.compile(flex_attention, dynamic=False))
    out = fn(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), block_mask=block_mask)
    return out.transpose(1, 2)
