"""The site table: the one vocabulary for *where* an intervention acts.

Names follow the paper's flat layer numbering. ``"embed"`` is the output of
``transformer.context_embedder`` (the text stream entering block 0); ``"double.i"`` is the
output of double-stream block ``i``; ``"single.j"`` the output of single-stream block ``j``.
Blocks also have a flat index: double blocks first (0..D-1), then single blocks (D..D+S-1),
so on FLUX.2-klein ``7 == "double.7"`` and ``17 == "single.9"``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Literal

from torch import nn

SiteKind = Literal["embed", "double", "single"]
SiteLike = str | int


@dataclass(frozen=True)
class Site:
    """One resolved site: canonical name, kind, block number within its kind, flat index."""

    name: str
    kind: SiteKind
    block: int | None  # index within its kind (None for embed)
    flat: int | None  # flat block index (None for embed)


class SiteTable:
    """The sites of one transformer, in forward order, with name/flat-index resolution."""

    def __init__(self, n_double: int, n_single: int):
        if n_double < 0 or n_single < 0:
            raise ValueError(f"block counts must be >= 0, got double={n_double}, single={n_single}")
        self.n_double = n_double
        self.n_single = n_single
        sites = [Site("embed", "embed", None, None)]
        sites += [Site(f"double.{i}", "double", i, i) for i in range(n_double)]
        sites += [Site(f"single.{j}", "single", j, n_double + j) for j in range(n_single)]
        self._sites = tuple(sites)
        self._by_name = {s.name: s for s in sites}

    @classmethod
    def for_transformer(cls, transformer: nn.Module) -> "SiteTable":
        """The table of a ``Flux2Transformer2DModel`` (any numbers of blocks)."""
        return cls(len(transformer.transformer_blocks), len(transformer.single_transformer_blocks))

    @property
    def names(self) -> list[str]:
        """Every site name in forward order (``embed`` first)."""
        return [s.name for s in self._sites]

    @property
    def blocks(self) -> list[Site]:
        """The block sites (every site but ``embed``) in forward order."""
        return [s for s in self._sites if s.kind != "embed"]

    def resolve(self, site: SiteLike | Site) -> Site:
        """Turn a name, flat index or ``Site`` into this table's ``Site``; ``ValueError`` if unknown."""
        if isinstance(site, Site):
            site = site.name
        if isinstance(site, numbers.Integral) and not isinstance(site, bool):
            flat = int(site)
            blocks = self.blocks
            if 0 <= flat < len(blocks):
                return blocks[flat]
            raise ValueError(
                f"unknown site {site!r}: flat block indices run 0..{len(blocks) - 1} "
                f"(0..{self.n_double - 1} double, {self.n_double}..{len(blocks) - 1} single); "
                f"valid names: {self._summary()}"
            )
        if isinstance(site, str):
            name = site.strip()
            if name in self._by_name:
                return self._by_name[name]
            if name.isdigit():
                return self.resolve(int(name))
        raise ValueError(f"unknown site {site!r}; valid sites: {self._summary()} or a flat index")

    def name(self, site: SiteLike | Site) -> str:
        """Canonical name of a site."""
        return self.resolve(site).name

    def module(self, transformer: nn.Module, site: SiteLike | Site) -> nn.Module:
        """The module whose output *is* the site."""
        s = self.resolve(site)
        if s.kind == "embed":
            return transformer.context_embedder
        if s.kind == "double":
            return transformer.transformer_blocks[s.block]
        return transformer.single_transformer_blocks[s.block]

    def range(self, start: SiteLike | None = None, stop: SiteLike | None = None) -> list[Site]:
        """Block sites from ``start`` to ``stop`` inclusive, in forward order."""
        blocks = self.blocks
        lo = 0 if start is None else self.resolve(start).flat
        hi = len(blocks) - 1 if stop is None else self.resolve(stop).flat
        return blocks[lo : hi + 1]

    def _summary(self) -> str:
        parts = ["'embed'"]
        if self.n_double:
            parts.append(f"'double.0'..'double.{self.n_double - 1}'")
        if self.n_single:
            parts.append(f"'single.0'..'single.{self.n_single - 1}'")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"SiteTable(double={self.n_double}, single={self.n_single})"
