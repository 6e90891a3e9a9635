"""``Intervene``: one context manager that installs interventions on enter and removes them on exit.

Like baukit's ``TraceDict``: forward hooks on the site modules (captures and patches), wrapped
attention processors on the knocked-out blocks, and a step clock (a pre-hook on the
transformer: one forward = one denoising step). Everything is planned and validated before
anything is installed, and everything installed is removed in ``__exit__`` whatever happened,
leaving pre-existing hooks and processors exactly as they were.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from mechinterp.engine.attention import DoubleKnockoutProcessor, Edge, KnockoutRule, SingleKnockoutProcessor
from mechinterp.engine.interventions import Capture, Captures, Intervention, Knockout, Patch, RefDrop
from mechinterp.engine.layout import TEXT_GROUPS, TokenLayout
from mechinterp.engine.sites import Site, SiteTable


def _processor_key(site: Site) -> str:
    prefix = "transformer_blocks" if site.kind == "double" else "single_transformer_blocks"
    return f"{prefix}.{site.block}.attn.processor"


def gather(site: Site, output, positions: torch.Tensor, text_len: int) -> torch.Tensor:
    """Rows ``positions`` (joint-sequence indices) of a site's output, as ``[batch, n, hidden]``."""
    if site.kind != "double":
        return output[:, positions]
    enc, hid = output
    txt, img = positions[positions < text_len], positions[positions >= text_len] - text_len
    parts = ([enc[:, txt]] if txt.numel() else []) + ([hid[:, img]] if img.numel() else [])
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def scatter(site: Site, output, positions: torch.Tensor, values: torch.Tensor, text_len: int):
    """A site's output with rows ``positions`` replaced by ``values`` (in place when no grad is needed)."""

    def put(t: torch.Tensor, idx: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            t = t.clone()
        t[:, idx] = v.to(dtype=t.dtype, device=t.device).expand(t.shape[0], -1, -1)
        return t

    if site.kind != "double":
        return put(output, positions, values)
    enc, hid = output
    is_txt = positions < text_len
    n_txt = int(is_txt.sum())
    if n_txt:
        enc = put(enc, positions[:n_txt], values[:, :n_txt])
    if n_txt < positions.numel():
        hid = put(hid, positions[n_txt:] - text_len, values[:, n_txt:])
    return (enc, hid)


class _SiteAction:
    """One capture or patch at one site, with its positions and per-step values resolved."""

    def __init__(self, item, site: Site, positions: torch.Tensor, values: dict[int, torch.Tensor] | None, default=None):
        self.item = item
        self.site = site
        self.positions = positions
        self.values = values or {}
        self.default = default  # patch tensor used at every step

    def active(self, step: int) -> bool:
        return self.item.steps is None or step in self.item.steps


class Intervene:
    """Apply interventions to a FLUX.2 transformer inside a ``with`` block.

    ``layout`` is the joint-sequence layout of the edit being generated; ``n_steps`` (when
    known) lets patches check they have values for every step before anything runs. After the
    block, ``captures`` holds what ``Capture`` items recorded and ``fired`` counts, per
    ``(intervention, site, step)``, how often each one acted.
    """

    def __init__(self, transformer: nn.Module, layout: TokenLayout, interventions: Iterable[Intervention] = (),
                 *, table: SiteTable | None = None, n_steps: int | None = None):
        self.transformer = transformer
        self.layout = layout
        self.table = table or SiteTable.for_transformer(transformer)
        self.items = list(interventions)
        self.n_steps = n_steps
        self.captures = Captures()
        self.fired: Counter = Counter()
        self.step = -1
        self._handles: list = []
        self._saved_processors: dict | None = None
        self._hidden = getattr(transformer, "inner_dim", None)

    # -- planning (validation only; nothing is installed) -------------------------------------
    def _plan(self):
        actions: dict[str, list[_SiteAction]] = defaultdict(list)
        edges: dict[str, list[Edge]] = defaultdict(list)
        for item in self.items:
            if isinstance(item, (Capture, Patch)):
                site = self.table.resolve(item.site)
                if site.kind == "embed" and item.tokens not in TEXT_GROUPS:
                    raise ValueError(f"site 'embed' carries only text tokens; {item.describe()} asks for {item.tokens!r}")
                pos = self.layout[item.tokens]
                if isinstance(item, Capture):
                    actions[site.name].append(_SiteAction(item, site, pos, None))
                else:
                    actions[site.name].append(self._plan_patch(item, site, pos))
            elif isinstance(item, (Knockout, RefDrop)):
                kos = item.expand(self.table) if isinstance(item, RefDrop) else [item.resolved(self.table)]
                for ko in kos:
                    edge = Edge(self.layout[ko.source], self.layout[ko.dest],
                                None if ko.steps is None else frozenset(ko.steps), item.describe())
                    sites = self.table.blocks if ko.sites is None else [self.table.resolve(s) for s in ko.sites]
                    for s in sites:
                        edges[s.name].append(edge)
            else:
                raise ValueError(f"not an intervention: {item!r} (expected Capture, Patch, Knockout or RefDrop)")
        return actions, edges

    def _check_rows(self, item: Patch, t: torch.Tensor, n: int, where: str) -> torch.Tensor:
        t = t if t.ndim == 3 else t.unsqueeze(0)
        if t.shape[1] != n or (self._hidden is not None and t.shape[2] != self._hidden):
            raise ValueError(
                f"{item.describe()}: values{where} have shape {tuple(t.shape[1:])}, expected ({n}, "
                f"{self._hidden if self._hidden is not None else 'hidden'}) for {n} {item.tokens!r} tokens"
            )
        return t

    def _plan_patch(self, item: Patch, site: Site, pos: torch.Tensor) -> _SiteAction:
        n = pos.numel()
        if isinstance(item.values, torch.Tensor):
            return _SiteAction(item, site, pos, None, default=self._check_rows(item, item.values, n, ""))
        steps = item.steps if item.steps is not None else (range(self.n_steps) if self.n_steps else None)
        values: dict[int, torch.Tensor] = {}
        given = {(self.table.name(k[0]), int(k[1])): v for k, v in item.values.items()}
        positions = getattr(item.values, "positions", {})
        positions = {(self.table.name(k[0]), int(k[1])): v for k, v in positions.items()}
        wanted = steps if steps is not None else sorted(s for (name, s) in given if name == site.name)
        missing = [s for s in wanted if (site.name, s) not in given]
        if missing:
            raise ValueError(f"{item.describe()}: no values for site {site.name!r} at steps {missing}; "
                             f"values hold {sorted(given)[:8]}")
        for s in wanted:
            t = given[(site.name, s)]
            src = positions.get((site.name, s))
            if src is not None:
                t = self._align(item, t, src, pos)
            values[s] = self._check_rows(item, t, n, f" at step {s}")
        return _SiteAction(item, site, pos, values)

    @staticmethod
    def _align(item: Patch, t: torch.Tensor, src: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        where = {int(p): i for i, p in enumerate(src.tolist())}
        missing = [int(p) for p in pos.tolist() if int(p) not in where]
        if missing:
            raise ValueError(f"{item.describe()}: positions {missing[:5]} of {item.tokens!r} were not captured in the source")
        idx = torch.tensor([where[int(p)] for p in pos.tolist()], dtype=torch.long, device=t.device)
        return t.index_select(-2, idx)

    # -- install / remove ---------------------------------------------------------------------
    def __enter__(self) -> "Intervene":
        actions, edges = self._plan()
        try:
            self._handles.append(self.transformer.register_forward_pre_hook(self._tick))
            for name, acts in actions.items():
                module = self.table.module(self.transformer, name)
                self._handles.append(module.register_forward_hook(self._site_hook(acts)))
            if edges:
                self._install_processors(edges)
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc) -> bool:
        self._remove()
        return False

    def _remove(self) -> None:
        while self._handles:
            self._handles.pop().remove()
        if self._saved_processors is not None:
            # set_attn_processor consumes the dict it is given: pass a copy
            self.transformer.set_attn_processor(dict(self._saved_processors))
            self._saved_processors = None

    def _install_processors(self, edges: dict[str, list[Edge]]) -> None:
        saved = dict(self.transformer.attn_processors)
        new = dict(saved)
        for name, site_edges in edges.items():
            site = self.table.resolve(name)
            key = _processor_key(site)
            rule = KnockoutRule(site.name, site_edges, self.layout, self.clock, self.fired)
            wrapper = DoubleKnockoutProcessor if site.kind == "double" else SingleKnockoutProcessor
            new[key] = wrapper(saved[key], rule)
        self._saved_processors = saved
        self.transformer.set_attn_processor(dict(new))

    # -- runtime ------------------------------------------------------------------------------
    def clock(self) -> int:
        """Index of the denoising step being run (0-based; -1 before the first)."""
        return self.step

    def _tick(self, module, args) -> None:
        self.step += 1

    def _site_hook(self, acts: list[_SiteAction]):
        text_len = self.layout.text_len

        def hook(module, args, output):
            step = self.step
            for act in acts:
                if not act.active(step):
                    continue
                key = (act.site.name, step)
                self.fired[(act.item.describe(), act.site.name, step)] += 1
                if isinstance(act.item, Capture):
                    rows = gather(act.site, output, act.positions, text_len).detach()
                    self.captures[key] = rows[0].clone() if rows.shape[0] == 1 else rows.clone()
                    self.captures.positions[key] = act.positions
                else:
                    values = act.values.get(step, act.default)
                    if values is None:
                        raise RuntimeError(f"{act.item.describe()}: no values for step {step}")
                    output = scatter(act.site, output, act.positions, values, text_len)
            return output

        return hook
