"""Token-row selections that index without copies where they can.

A token group is a sorted set of sequence positions. Most groups the paper uses are one
contiguous span (``text``, ``image``, ``ref``, usually ``text.content``), and a span can be read
with a view (``narrow``) and written with a slice assignment, which needs no index tensor on
the device and no host round-trip. ``Rows`` keeps that span form when it applies and falls back
to an index tensor, moved to each device once and cached, when it does not. Captures, patches
and the query-splitting attention all select rows through it.
"""

from __future__ import annotations

import torch


class Rows:
    """A sorted set of positions along one dimension: a ``start:stop`` span or an index tensor."""

    __slots__ = ("index", "start", "stop", "_on")

    def __init__(self, positions: torch.Tensor | range | list):
        with torch.inference_mode(False):
            self._init(positions)

    def _init(self, positions) -> None:
        index = torch.as_tensor(list(positions) if isinstance(positions, range) else positions, dtype=torch.long)
        self.index = index.reshape(-1).cpu().clone()  # never an inference tensor (see __init__)
        n = self.index.numel()
        contiguous = n > 0 and int(self.index[-1]) - int(self.index[0]) + 1 == n and bool((self.index.diff() == 1).all())
        self.start = int(self.index[0]) if contiguous else None
        self.stop = int(self.index[-1]) + 1 if contiguous else None
        self._on: dict[torch.device, torch.Tensor] = {}

    def __len__(self) -> int:
        return self.index.numel()

    @property
    def is_span(self) -> bool:
        """Whether the rows are one contiguous span (selected as a view, no index tensor)."""
        return self.start is not None

    def on(self, device: torch.device) -> torch.Tensor:
        """The index tensor on ``device`` (copied there once, then cached)."""
        device = torch.device(device)
        if device not in self._on:
            with torch.inference_mode(False):  # a normal tensor: cached rows serve autograd runs too
                self._on[device] = self.index.to(device)
        return self._on[device]

    def take(self, t: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """``t``'s rows along ``dim``: a view for a span, a gathered copy otherwise."""
        if self.is_span:
            return t.narrow(dim, self.start, self.stop - self.start)
        return t.index_select(dim, self.on(t.device))

    def put(self, t: torch.Tensor, values: torch.Tensor, dim: int = 1) -> None:
        """Write ``values`` into ``t``'s rows along ``dim``, in place (``values`` broadcast to them)."""
        if self.is_span:
            t.narrow(dim, self.start, self.stop - self.start).copy_(values)
        else:
            idx = [slice(None)] * dim + [self.on(t.device)]
            t[tuple(idx)] = values

    def __repr__(self) -> str:
        if self.is_span:
            return f"Rows({self.start}:{self.stop})"
        return f"Rows(n={len(self)})"
