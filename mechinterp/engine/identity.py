"""What a model *is*, by content: the key that tells one model's generations from another's.

* A hub model is its snapshot's commit (the Hugging Face cache is content-addressed by it).
* A local folder is the SHA-256 of every file in it (``mechinterp.io.file_sha256``, memoised on
  path, size and mtime), so a copied folder with one changed weight is another model, and the
  same files anywhere (a checkout, an installed wheel) are the same model.
* A model built in memory is a hash of every parameter and buffer, computed on the device the
  tensors live on: each tensor's bytes are reduced to two polynomial hashes modulo primes below
  2**31 there, and only those two integers travel to the host — never a copy of the weights.
  A change of any one byte changes both hashes (a nonzero byte difference times a power of the
  base is never 0 modulo a prime), and unrelated changes collide with probability about 2**-62.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from mechinterp.io import file_sha256

#: (prime, base) pairs of the two polynomial hashes over a tensor's bytes
_HASHES = ((2_147_483_647, 1_000_003), (2_147_483_629, 40_503))
#: bytes reduced per step: bounds the device memory the hash needs (a few int64 copies of a chunk)
CHUNK_BYTES = 1 << 24


@dataclass(frozen=True)
class ModelSource:
    """Where a model was loaded from: ``kind`` is ``"folder"``, ``"hub"`` or ``"memory"``."""

    kind: str
    location: str | None = None  # the folder, or the hub repo id
    revision: str | None = None  # the hub snapshot's commit

    def describe(self) -> str:
        """``hub:owner/name@<commit>``, ``folder:/path`` or ``memory``, for reports."""
        if self.kind == "hub":
            return f"hub:{self.location}@{self.revision}"
        return self.kind if self.location is None else f"{self.kind}:{self.location}"


def folder_digest(folder: str | Path) -> str:
    """SHA-256 over every file of ``folder`` (relative path and content; dot-files skipped)."""
    root = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        h.update(f"{rel.as_posix()}\0{file_sha256(path)}\0".encode())
    return h.hexdigest()


def _powers(base: int, prime: int, n: int, device: torch.device) -> torch.Tensor:
    """``base**j mod prime`` for ``j < n`` as int64 on ``device`` (by doubling: log2(n) products)."""
    out = torch.ones(1, dtype=torch.int64, device=device)
    step = base % prime
    while out.numel() < n:
        out = torch.cat([out, out * step % prime])
        step = step * step % prime
    return out[:n]


def tensor_digest(tensor: torch.Tensor) -> tuple[int, int]:
    """Two polynomial hashes ``sum(b_i * base**i) mod prime`` of the tensor's bytes ``b_i``,
    reduced on the tensor's own device (only the two results are copied to the host)."""
    data = tensor.detach().contiguous().reshape(-1).view(torch.uint8)
    if data.numel() == 0:
        return 0, 0
    n = min(CHUNK_BYTES, data.numel())
    out = []
    for prime, base in _HASHES:
        powers = _powers(base, prime, n, data.device)
        acc = torch.zeros((), dtype=torch.int64, device=data.device)
        for start in range(0, data.numel(), CHUNK_BYTES):
            chunk = data[start:start + CHUNK_BYTES].to(torch.int64)
            offset = pow(base, start, prime)  # base**start: the chunk's place in the polynomial
            # bytes < 2**8 times powers < 2**31, summed over <= 2**24 bytes: < 2**63, no overflow
            partial = (chunk * powers[:chunk.numel()]).sum() % prime
            acc = (acc + partial * offset) % prime
        out.append(int(acc.item()))
    return out[0], out[1]


def modules_digest(modules: dict[str, torch.nn.Module]) -> str:
    """SHA-256 over every parameter and buffer of ``modules``: names, dtypes, shapes and
    :func:`tensor_digest` of each (computed on the tensors' devices)."""
    h = hashlib.sha256()
    for prefix, module in sorted(modules.items()):
        for name, t in sorted(module.state_dict(keep_vars=False).items()):
            h1, h2 = tensor_digest(t)
            h.update(f"{prefix}.{name}|{t.dtype}|{tuple(t.shape)}|{h1}|{h2}\n".encode())
    return h.hexdigest()


def pipeline_digest(pipe) -> str:
    """Content hash of an in-memory pipeline: every module's tensors, the scheduler's config and
    the tokenizer's definition (what changes the generations besides the weights)."""
    modules = {name: c for name, c in pipe.components.items() if isinstance(c, torch.nn.Module)}
    h = hashlib.sha256(modules_digest(modules).encode())
    scheduler = getattr(pipe, "scheduler", None)
    if scheduler is not None:
        config = {k: v for k, v in scheduler.config.items() if not k.startswith("_")}  # "_" keys: bookkeeping
        h.update(json.dumps(config, sort_keys=True, default=str).encode())
    tokenizer = getattr(pipe, "tokenizer", None)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # the tokenizer's definition, not its call state: a call with padding/truncation leaves them set on
        # the backend, which would make a model's identity change after its first generation
        definition = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
        h.update(json.dumps(definition, sort_keys=True).encode())
        h.update(str(getattr(tokenizer, "chat_template", "")).encode())
    return h.hexdigest()


def content_id(source: ModelSource, pipe) -> str:
    """The model's identity by content (see the module docstring): hub commit, folder files or tensors."""
    if source.kind == "hub":
        if not source.revision:
            raise ValueError(f"hub model {source.location!r} has no snapshot commit to identify it by")
        return f"hub:{source.location}@{source.revision}"
    if source.kind == "folder":
        return "folder:" + folder_digest(source.location)
    return "memory:" + pipeline_digest(pipe)
