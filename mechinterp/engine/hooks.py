"""``Intervene``: one context manager that installs interventions on enter and removes them on exit.

Like baukit's ``TraceDict``: forward hooks on the site modules (captures and patches), wrapped
attention processors on the knocked-out blocks, and a step clock (a pre-hook on the
transformer: one forward = one denoising step). Everything is planned and validated before
anything is installed, and everything installed is removed in ``__exit__`` whatever happened,
leaving pre-existing hooks and processors exactly as they were.

Speed (issue 9): knockouts use exact query-splitting attention unless told otherwise
(``knockout_mode``); a reference drop removes the reference from the sequence from its cutoff on
(``ref_drop_mode="truncate"``) when nothing asks for reference rows there; token rows are
selected as views where they are contiguous; patch values are moved to the model's device once;
on CUDA, captures are copied to pinned host memory asynchronously (no host sync in a hook).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from mechinterp.engine.attention import Edge, KnockoutProcessor, KnockoutRule, check_mode
from mechinterp.engine.interventions import Capture, Captures, Intervention, Knockout, Patch, RefDrop
from mechinterp.engine.layout import TEXT_GROUPS, TokenLayout
from mechinterp.engine.rows import Rows
from mechinterp.engine.sites import Site, SiteTable
from mechinterp.engine.truncate import RefTruncation

REF_DROP_MODES = ("truncate", "mask")


def check_modes(knockout_mode: str, ref_drop_mode: str) -> tuple[str, str]:
    """Validate a knockout mode and a reference-drop mode; ``ValueError`` lists the valid ones."""
    if ref_drop_mode not in REF_DROP_MODES:
        raise ValueError(f"unknown ref_drop_mode {ref_drop_mode!r}; valid modes: {', '.join(REF_DROP_MODES)}")
    return check_mode(knockout_mode), ref_drop_mode


def check_layouts(layout: TokenLayout, layouts: Sequence[TokenLayout] | None) -> list[TokenLayout]:
    """The batch rows' layouts (``[layout]`` when not given); ``ValueError`` unless ``layout`` is the
    first and every row has its joint sequence (text, image and reference token counts)."""
    if layouts is None:
        return [layout]
    layouts = list(layouts)
    if not layouts or layouts[0] is not layout:
        raise ValueError("layouts must start with the layout given as `layout`")
    for i, other in enumerate(layouts):
        if not _same_shape(other, layout):
            raise ValueError(f"batch row {i} has a joint sequence of text {other.text_len} + image {other.n_image} + "
                             f"ref {other.n_ref} tokens; row 0 has {layout.text_len} + {layout.n_image} + {layout.n_ref}")
    return layouts


def _same_shape(a: TokenLayout, b: TokenLayout) -> bool:
    return (a.text_len, a.n_image, a.n_ref) == (b.text_len, b.n_image, b.n_ref)


def _processor_key(site: Site) -> str:
    prefix = "transformer_blocks" if site.kind == "double" else "single_transformer_blocks"
    return f"{prefix}.{site.block}.attn.processor"


class SiteRows:
    """Positions of a site's output split by stream: text rows and image-stream rows (double
    blocks return ``(text, image+ref)``; ``embed`` and single blocks one joint tensor)."""

    def __init__(self, site: Site, positions: torch.Tensor, text_len: int):
        self.double = site.kind == "double"
        if not self.double:
            self.txt, self.img = Rows(positions), None
            return
        txt, img = positions[positions < text_len], positions[positions >= text_len] - text_len
        self.txt = Rows(txt) if txt.numel() else None
        self.img = Rows(img) if img.numel() else None

    def gather(self, output) -> torch.Tensor:
        """The selected rows as ``[batch, n, hidden]`` (a view when they are one span of one stream)."""
        if not self.double:
            return self.txt.take(output)
        enc, hid = output
        parts = ([self.txt.take(enc)] if self.txt else []) + ([self.img.take(hid)] if self.img else [])
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def scatter(self, output, values: torch.Tensor):
        """``output`` with the selected rows replaced by ``values`` (in place when no grad is needed)."""

        def put(t: torch.Tensor, rows: Rows, v: torch.Tensor) -> torch.Tensor:
            if torch.is_grad_enabled():
                t = t.clone()
            rows.put(t, v.to(dtype=t.dtype, device=t.device).expand(t.shape[0], -1, -1))
            return t

        if not self.double:
            return put(output, self.txt, values)
        enc, hid = output
        n_txt = len(self.txt) if self.txt else 0
        if self.txt:
            enc = put(enc, self.txt, values[:, :n_txt])
        if self.img:
            hid = put(hid, self.img, values[:, n_txt:])
        return (enc, hid)


def offload(rows: torch.Tensor) -> torch.Tensor:
    """A host copy of captured rows: asynchronous into pinned memory from CUDA (no host sync),
    an ordinary copy elsewhere. The copy is ordered on the current stream, so it is complete
    before any later host read of a result of the same generation."""
    if rows.device.type != "cuda":
        return rows.clone()
    host = torch.empty(rows.shape, dtype=rows.dtype, pin_memory=True)
    host.copy_(rows, non_blocking=True)
    return host


class _SiteAction:
    """One capture or patch at one site, with its positions and per-step values resolved."""

    def __init__(self, item, site: Site, positions: torch.Tensor, values: dict[int, torch.Tensor] | None, default=None):
        self.item = item
        self.label = item.describe()  # built once: the hook counts firings under it on every call
        self.site = site
        self.positions = positions
        self.rows: SiteRows | None = None  # set when installed (needs the text length)
        self.values = values or {}
        self.default = default  # patch tensor used at every step

    def active(self, step: int) -> bool:
        """Whether this capture/patch acts at ``step``."""
        return self.item.steps is None or step in self.item.steps


class Intervene:
    """Apply interventions to a FLUX.2 transformer inside a ``with`` block.

    ``layout`` is the joint-sequence layout of the edit being generated; ``n_steps`` (when
    known) lets patches check they have values for every step before anything runs. After the
    block, ``captures`` holds what ``Capture`` items recorded and ``fired`` counts, per
    ``(intervention, site, step)``, how often each one acted.

    ``knockout_mode``: ``"auto"`` (exact query splitting where the wrapped processor is stock,
    dense masks otherwise), ``"split"``, ``"flex"`` or ``"dense"`` (the reference path).
    ``ref_drop_mode``: ``"truncate"`` (remove the reference from the cutoff on when nothing here asks
    for reference rows there) or ``"mask"``. ``offload_captures``: copy captures to host memory
    (default: when the transformer is on CUDA). ``layouts`` (a batch, one per row, ``layout`` first) may
    place token groups differently per row where only knockouts use them: each row's knockouts block
    its own positions; captures and patches need their groups alike in every row (``ValueError``).

    One ``Intervene`` may be entered again after it exits: each entry starts afresh, at step -1 with
    new ``captures`` and ``fired`` (the previous entry's objects are left as they were, for whoever
    holds them), so a second run records exactly what a new ``Intervene`` would. Entering it again
    while it is active (nested in itself) is refused with a ``RuntimeError``: its one step clock
    cannot count two runs.
    """

    def __init__(self, transformer: nn.Module, layout: TokenLayout, interventions: Iterable[Intervention] = (),
                 *, table: SiteTable | None = None, n_steps: int | None = None, knockout_mode: str = "auto",
                 ref_drop_mode: str = "truncate", offload_captures: bool | None = None,
                 layouts: Sequence[TokenLayout] | None = None):
        self.transformer = transformer
        self.layout = layout
        self.layouts = check_layouts(layout, layouts)
        self.table = table or SiteTable.for_transformer(transformer)
        self.items = list(interventions)
        self.n_steps = n_steps
        self.knockout_mode, self.ref_drop_mode = check_modes(knockout_mode, ref_drop_mode)
        self.offload_captures = offload_captures
        self.truncation: RefTruncation | None = None
        self.captures = Captures()
        self.fired: Counter = Counter()
        self.step = -1
        self._active = False
        self._handles: list = []
        self._saved_processors: dict | None = None
        self._hidden = getattr(transformer, "inner_dim", None)

    # -- planning (validation only; nothing is installed) -------------------------------------
    def _plan(self):
        actions: dict[str, list[_SiteAction]] = defaultdict(list)
        edges: dict[str, list[list[Edge]]] = defaultdict(list)  # per site: each edge once per batch row
        for item in self.items:
            steps = getattr(item, "steps", None)
            if steps is not None and self.n_steps is not None and max(steps) >= self.n_steps:
                raise ValueError(f"{item.describe()}: steps {list(steps)} go beyond this run's "
                                 f"{self.n_steps} steps (valid steps: 0..{self.n_steps - 1}, or None for every step)")
            if isinstance(item, (Capture, Patch)):
                site = self.table.resolve(item.site)
                if site.kind == "embed" and item.tokens not in TEXT_GROUPS:
                    raise ValueError(f"site 'embed' carries only text tokens; {item.describe()} asks for {item.tokens!r}")
                pos = self.layout[item.tokens]
                for i, other in enumerate(self.layouts[1:], 1):
                    if not torch.equal(other[item.tokens], pos):
                        raise ValueError(f"{item.describe()}: token group {item.tokens!r} differs between batch rows 0 "
                                         f"and {i}; a capture or patch needs it at the same positions in every row")
                if isinstance(item, Capture):
                    actions[site.name].append(_SiteAction(item, site, pos, None))
                else:
                    actions[site.name].append(self._plan_patch(item, site, pos))
            elif isinstance(item, (Knockout, RefDrop)):
                kos = item.expand(self.table) if isinstance(item, RefDrop) else [item.resolved(self.table)]
                if isinstance(item, RefDrop) and self.truncation is None and self._can_truncate(item):
                    last = self.table.blocks[self.table.resolve(item.cutoff).flat - 1]
                    self.truncation = RefTruncation(self.table, last, self.layout, item.steps, self.clock,
                                                    self.fired, item.describe())
                    kos = kos[:1]  # ref→image before the cutoff; from it on the reference is gone
                for ko in kos:
                    steps = None if ko.steps is None else frozenset(ko.steps)
                    per_row = [Edge(lay[ko.source], lay[ko.dest], steps, item.describe()) for lay in self.layouts]
                    sites = self.table.blocks if ko.sites is None else [self.table.resolve(s) for s in ko.sites]
                    for s in sites:
                        edges[s.name].append(per_row)
            else:
                raise ValueError(f"not an intervention: {item!r} (expected Capture, Patch, Knockout or RefDrop)")
        return actions, edges

    def _can_truncate(self, drop: RefDrop) -> bool:
        """Whether ``drop`` can remove the reference rather than mask it: some block before its
        cutoff sees the reference, and no capture or patch here reads or writes reference rows
        from the cutoff on."""
        if self.ref_drop_mode != "truncate" or self.layout.n_ref == 0:
            return False
        cut = self.table.resolve(drop.cutoff)
        if cut.kind == "embed" or cut.flat == 0:
            return False
        ref = set(self.layout["ref"].tolist())
        for it in self.items:
            if isinstance(it, (Capture, Patch)) and ref & set(self.layout[it.tokens].tolist()):
                site = self.table.resolve(it.site)
                if site.kind != "embed" and site.flat >= cut.flat:
                    return False
        return True

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
        if self._active:
            raise RuntimeError("this Intervene is already active: it cannot be entered again inside its own "
                               "`with` block (nest a second Intervene instead)")
        self.truncation = None
        self.step = -1  # each entry is a new run: a fresh step clock, captures and firing counts
        self.captures = Captures()
        self.fired = Counter()
        actions, edges = self._plan()
        device = self._device()
        if self.offload_captures is None:
            self.offload_captures = device is not None and device.type == "cuda"
        for acts in actions.values():
            for act in acts:
                act.rows = SiteRows(act.site, act.positions, self.layout.text_len)
                if device is not None:  # patch values go to the model's device once, not per step
                    act.values = {s: v.to(device) for s, v in act.values.items()}
                    act.default = None if act.default is None else act.default.to(device)
        try:
            self._handles.append(self.transformer.register_forward_pre_hook(self._tick))
            for name, acts in actions.items():
                module = self.table.module(self.transformer, name)
                self._handles.append(module.register_forward_hook(self._site_hook(acts)))
            if self.truncation is not None:
                self._handles.extend(self.truncation.install(self.transformer))
            if edges:
                self._install_processors(edges)
        except BaseException:
            self._remove()
            raise
        self._active = True
        return self

    def __exit__(self, *exc) -> bool:
        self._active = False
        self._remove()
        return False

    def _device(self) -> torch.device | None:
        p = next(self.transformer.parameters(), None)
        return None if p is None or p.device.type == "meta" else p.device

    def _remove(self) -> None:
        while self._handles:
            self._handles.pop().remove()
        if self._saved_processors is not None:
            # set_attn_processor consumes the dict it is given: pass a copy
            self.transformer.set_attn_processor(dict(self._saved_processors))
            self._saved_processors = None

    def _install_processors(self, edges: dict[str, list[list[Edge]]]) -> None:
        saved = dict(self.transformer.attn_processors)
        new = dict(saved)
        for name, site_edges in edges.items():
            site = self.table.resolve(name)
            key = _processor_key(site)
            cut = self.truncation
            short = self.layout.n_ref if cut is not None and site.flat > cut.last.flat else 0
            samples = None if len(self.layouts) == 1 else [list(row) for row in zip(*site_edges)]
            rule = KnockoutRule(site.name, [row[0] for row in site_edges], self.layout, self.clock, self.fired,
                                short=short, samples=samples)
            new[key] = KnockoutProcessor(saved[key], rule, site.kind == "double", self.knockout_mode)
        self._saved_processors = saved
        self.transformer.set_attn_processor(dict(new))

    # -- runtime ------------------------------------------------------------------------------
    def clock(self) -> int:
        """Index of the denoising step being run (0-based; -1 before the first)."""
        return self.step

    def _tick(self, module, args) -> None:
        self.step += 1

    def _site_hook(self, acts: list[_SiteAction]):
        @torch.compiler.disable  # runs eagerly inside compiled blocks, so it fires on every call
        def hook(module, args, output):
            step = self.step
            for act in acts:
                if not act.active(step):
                    continue
                key = (act.site.name, step)
                self.fired[(act.label, act.site.name, step)] += 1
                if isinstance(act.item, Capture):
                    rows = act.rows.gather(output).detach()
                    # one copy of the selected rows only: a gathered copy is kept, a view is copied
                    if self.offload_captures:
                        rows = offload(rows)
                    elif _aliases(rows, output):
                        rows = rows.clone()
                    self.captures[key] = rows[0] if rows.shape[0] == 1 else rows
                    self.captures.positions[key] = act.positions
                else:
                    values = act.values.get(step, act.default)
                    if values is None:
                        raise RuntimeError(f"{act.label}: no values for step {step}")
                    output = act.rows.scatter(output, values)
            return output

        return hook



def _aliases(rows: torch.Tensor, output) -> bool:
    """Whether ``rows`` shares memory with a site output (then it must be copied: later hooks
    and in-place patches write there, and keeping it would pin the whole output)."""
    ptr = rows.untyped_storage().data_ptr()
    return any(t.untyped_storage().data_ptr() == ptr for t in (output if isinstance(output, tuple) else (output,)))
