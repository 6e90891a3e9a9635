"""Interventions as plain frozen data (pyvene style): *where*, *which tokens*, *what*.

They say nothing about how they are applied; ``mechinterp.engine.hooks.Intervene`` does that.
Every intervention is hashable and has a stable ``key()``, from which generation caches derive
their keys, and a ``describe()`` a report can print.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch

from mechinterp.engine.layout import check_group
from mechinterp.engine.sites import SiteLike, SiteTable


def _steps(steps) -> tuple[int, ...] | None:
    """Normalise a steps argument: ``None`` (every step), an int, or an iterable of ints."""
    if steps is None:
        return None
    if isinstance(steps, int) and not isinstance(steps, bool):
        steps = (steps,)
    out = tuple(sorted({int(s) for s in steps}))
    if not out:
        raise ValueError("steps must be None (every step) or name at least one step, got an empty list")
    if any(s < 0 for s in out):
        raise ValueError(f"steps must be non-negative step indices, got {steps!r}")
    return out


def _site(site) -> SiteLike:
    if isinstance(site, bool) or not isinstance(site, (str, int)):
        raise ValueError(f"site must be a site name like 'single.9' or a flat block index, got {site!r}")
    return site


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def tensor_digest(t: torch.Tensor) -> str:
    """Content hash of a tensor (dtype, shape and values)."""
    t = t.detach().to("cpu").contiguous()
    h = hashlib.sha256(f"{t.dtype}:{tuple(t.shape)}".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class Captures(dict):
    """Captured activations ``{(site, step): tensor[n_tokens, hidden]}`` of one generation.

    ``positions[(site, step)]`` holds the joint-sequence positions of the captured rows, so a
    ``Patch`` can take any token subset of what was captured.
    """

    def __init__(self, *args, positions: Mapping | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.positions: dict = dict(positions or {})

    def digest(self) -> str:
        """Content hash of every captured tensor and its positions."""
        h = hashlib.sha256()
        for key in sorted(self, key=str):
            h.update(repr(key).encode())
            h.update(tensor_digest(self[key]).encode())
            if key in self.positions:
                h.update(tensor_digest(self.positions[key]).encode())
        return h.hexdigest()


@dataclass(frozen=True)
class Capture:
    """Record the output of ``tokens`` at ``site`` (``steps=None``: every step)."""

    site: SiteLike
    tokens: str = "text"
    steps: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        _site(self.site)
        check_group(self.tokens)
        object.__setattr__(self, "steps", _steps(self.steps))

    def resolved(self, table: SiteTable) -> "Capture":
        """The same capture with its site in canonical form."""
        return Capture(table.name(self.site), self.tokens, self.steps)

    def key(self) -> str:
        """Stable content key."""
        return _digest(["capture", str(self.site), self.tokens, self.steps])

    def describe(self) -> str:
        """One-line human-readable form."""
        return f"Capture({self.site}, {self.tokens}, steps={'all' if self.steps is None else list(self.steps)})"


@dataclass(frozen=True, eq=False)
class Patch:
    """Overwrite the output of ``tokens`` at ``site`` with ``values`` (``steps=None``: every step).

    ``values`` is a ``Captures`` of another generation (rows aligned by position), a mapping
    ``{(site, step): tensor[n_tokens, hidden]}``, or one tensor ``[n_tokens, hidden]`` used at
    every targeted step. Shapes are checked against the edit's layout before anything runs.
    """

    site: SiteLike
    values: Captures | Mapping | torch.Tensor = field(repr=False)
    tokens: str = "text"
    steps: tuple[int, ...] | None = None
    _key: str = field(default="", repr=False)
    _values_digest: str = field(default="", repr=False)  # carried by resolved(): values hashed once

    def __post_init__(self) -> None:
        _site(self.site)
        check_group(self.tokens)
        object.__setattr__(self, "steps", _steps(self.steps))
        v = self.values
        if isinstance(v, torch.Tensor):
            if v.ndim not in (2, 3):
                raise ValueError(f"patch values must be [n_tokens, hidden] or [batch, n_tokens, hidden], got shape {tuple(v.shape)}")
            tensors = {"": v}
        elif isinstance(v, Mapping):
            bad = [k for k, t in v.items() if not isinstance(t, torch.Tensor)]
            if bad:
                raise ValueError(f"patch values must map (site, step) to tensors; entries {bad[:3]} are not tensors")
            tensors = {f" at {k!r}": t for k, t in v.items()}
        else:
            raise ValueError(f"patch values must be a Captures dict, a mapping or a tensor, got {type(v).__name__}")
        if not self._values_digest:  # a resolved copy carries values already checked
            for where, t in tensors.items():
                _check_finite(self, where, t)

    def values_digest(self) -> str:
        """Content hash of the values (computed once per patch and its resolved copies)."""
        if not self._values_digest:
            v = self.values
            if isinstance(v, torch.Tensor):
                vd = tensor_digest(v)
            elif isinstance(v, Captures):
                vd = v.digest()
            else:
                vd = Captures(v).digest()
            object.__setattr__(self, "_values_digest", vd)
        return self._values_digest

    def key(self) -> str:
        """Stable content key (includes a hash of the values)."""
        if not self._key:
            key = _digest(["patch", str(self.site), self.tokens, self.steps, self.values_digest()])
            object.__setattr__(self, "_key", key)
        return self._key

    def __hash__(self) -> int:
        return hash(self.key())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Patch) and self.key() == other.key()

    def resolved(self, table: SiteTable) -> "Patch":
        """The same patch with its site in canonical form."""
        return Patch(table.name(self.site), self.values, self.tokens, self.steps, _values_digest=self.values_digest())

    def describe(self) -> str:
        """One-line human-readable form."""
        return f"Patch({self.site}, {self.tokens}, steps={'all' if self.steps is None else list(self.steps)})"


def _check_finite(patch: Patch, where: str, t: torch.Tensor) -> None:
    """``ValueError`` when patch values hold NaN or infinity: written into a forward pass they would
    silently turn the generation into noise (or NaNs) instead of failing."""
    if not (t.is_floating_point() or t.is_complex()) or t.numel() == 0:
        return
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        first = tuple(int(i) for i in torch.nonzero(~finite)[0])
        n_nan = int(torch.isnan(t).sum())
        raise ValueError(f"{patch.describe()}: values{where} must be finite; they hold {n_nan} NaN and "
                         f"{int((~finite).sum()) - n_nan} infinite entries (the first at index {first})")


@dataclass(frozen=True)
class Knockout:
    """Queries of group ``dest`` may not attend to keys of group ``source`` (the paper's "source→dest").

    ``sites=None``: every block; ``steps=None``: every step.
    """

    source: str
    dest: str
    sites: tuple[SiteLike, ...] | None = None
    steps: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        check_group(self.source)
        check_group(self.dest)
        if self.sites is not None:
            sites = (self.sites,) if isinstance(self.sites, (str, int)) else tuple(self.sites)
            object.__setattr__(self, "sites", tuple(_site(s) for s in sites))
        object.__setattr__(self, "steps", _steps(self.steps))

    def resolved(self, table: SiteTable) -> "Knockout":
        """The same knockout with canonical site names (``embed`` is rejected)."""
        if self.sites is None:
            return self
        sites = []
        for s in self.sites:
            site = table.resolve(s)
            if site.kind == "embed":
                raise ValueError("knockouts act inside attention; site 'embed' has none (use a block site)")
            sites.append(site.name)
        return Knockout(self.source, self.dest, tuple(sites), self.steps)

    def key(self) -> str:
        """Stable content key."""
        return _digest(["knockout", self.source, self.dest, self.sites, self.steps])

    def describe(self) -> str:
        """One-line human-readable form."""
        where = "all blocks" if self.sites is None else ",".join(map(str, self.sites))
        return f"Knockout({self.source}->{self.dest}, {where})"

    def to_dict(self) -> dict:
        """JSON-ready form (used for organism wiring files)."""
        return {"source": self.source, "dest": self.dest, "sites": list(self.sites) if self.sites else None,
                "steps": list(self.steps) if self.steps else None}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Knockout":
        """Inverse of ``to_dict``; ``ValueError`` naming unexpected fields."""
        extra = set(d) - {"source", "dest", "sites", "steps"}
        if extra or not {"source", "dest"} <= set(d):
            raise ValueError(f"a knockout needs 'source' and 'dest' (optional 'sites', 'steps'), got fields {sorted(d)}")
        return cls(d["source"], d["dest"], tuple(d["sites"]) if d.get("sites") else None, d.get("steps"))


#: the four edges into and out of the reference cut after a reference drop's cutoff
#: the four attention edges into and out of the reference that a reference drop cuts
REF_EDGES = (("ref", "image"), ("ref", "text"), ("image", "ref"), ("text", "ref"))


@dataclass(frozen=True)
class RefDrop:
    """Reference drop with ``cutoff`` = the first block where the reference is severed.

    Blocks before ``cutoff`` run with ``ref→image`` blocked (the reference can reach the image
    only through the text); from ``cutoff`` on every edge into and out of the reference
    (ref→image, ref→text, image→ref, text→ref) is cut. This is the authors' convention (their
    ``--split-block``, "the cutoff block — first block of the suffix"): ``RefDrop("single.9")``
    lets the text read the reference up to ``single.8``. ``cutoff="embed"`` (and equally the
    first block) severs the reference in every block, which is the same as generating without it.
    """

    cutoff: SiteLike
    steps: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        _site(self.cutoff)
        object.__setattr__(self, "steps", _steps(self.steps))

    def expand(self, table: SiteTable) -> list[Knockout]:
        """The primitive knockouts this drop is made of, on ``table``'s blocks."""
        cut = table.resolve(self.cutoff)
        first = 0 if cut.kind == "embed" else cut.flat  # index of the first severed block
        before = tuple(s.name for s in table.blocks[:first])
        after = tuple(s.name for s in table.blocks[first:])
        out = [Knockout("ref", "image", before, self.steps)] if before else []
        return out + [Knockout(src, dst, after, self.steps) for src, dst in REF_EDGES]

    def resolved(self, table: SiteTable) -> "RefDrop":
        """The same drop with its cutoff in canonical form."""
        return RefDrop(table.name(self.cutoff), self.steps)

    def key(self) -> str:
        """Stable content key."""
        return _digest(["refdrop", str(self.cutoff), self.steps])

    def describe(self) -> str:
        """One-line human-readable form."""
        return f"RefDrop(cutoff={self.cutoff})"


Intervention = Capture | Patch | Knockout | RefDrop


def interventions_key(items: Iterable[Intervention], table: SiteTable | None = None) -> str:
    """One content key for a sequence of interventions (order matters: patches compose in order)."""
    keys = []
    for it in items:
        if table is not None:
            it = it.resolved(table)
        keys.append(it.key())
    return _digest(keys)
