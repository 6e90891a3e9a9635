"""Batched looks: the generations a look's experiments need, computed a batch at a time.

A look runs its claim's experiment on many tasks. An experiment function asks the model for its
generations one at a time, and some depend on earlier ones (a lens patches in what an I2I run
captured; a patched target needs its source's capture), so they cannot be listed up front.
:func:`run_batched` runs every task's experiment against a :class:`Prefetch` model instead: a
generation the cache (or this look) already has is returned at once; a missing one is recorded and
returned as a promise, which the experiment may hold while it asks for further, independent
generations; reading from a promise stops the experiment (:class:`Pending`). The missing
generations of all stopped tasks are then computed together — grouped into batches whose edits share a shape, the
positions of the token groups their captures and patches use, and the interventions' form (:meth:`mechinterp.engine.Model.generate_many`; patches with
per-task values are stacked) — stored in the cache, and the stopped experiments run again from the
start, now further. An experiment whose generations depend on each other in k steps runs k + 1
times; the re-runs read this look's memo and generate nothing.

Batched outputs equal one-by-one outputs to float tolerance, not bit for bit (``engine.batch``);
the generation cache keeps whichever was computed first, so a rerun reads the same bits. A group
of one is generated one by one, exactly as without batching; ``batch=1`` never batches.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import torch

from mechinterp.engine.batch import stack_captures
from mechinterp.engine.generation import Generation, as_capture
from mechinterp.engine.interventions import Capture, Captures, Patch
from mechinterp.suite.gencache import CachingModel

T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    """One generation an experiment asked for and the cache did not have."""

    key: str
    edit: Any
    interventions: tuple
    capture: tuple


class Pending(Exception):
    """Raised by :meth:`Prefetch.generate` for a generation not computed yet (carries its request)."""

    def __init__(self, request: Request):
        super().__init__(request.key)
        self.request = request


class _Promise:
    """What :meth:`Prefetch.generate` returns for a generation not computed yet: the experiment may
    hold it (put it in its result) and go on asking for independent generations, which then join
    the same batch; reading anything from it stops the experiment (:class:`Pending`)."""

    __slots__ = ("_request",)

    def __init__(self, request: Request):
        self._request = request

    def __getattr__(self, name):
        raise Pending(self._request)


class Prefetch:
    """A :class:`CachingModel` stand-in for one look: ``generate`` answers from this look's memo or
    the cache, and records anything else in :attr:`missed`, returning a :class:`_Promise` for it
    (every other attribute is the model's)."""

    def __init__(self, model: CachingModel):
        self._model = model
        self.memo: dict[str, Generation] = {}
        self.missed: dict[str, Request] = {}

    def __getattr__(self, name):
        return getattr(self._model, name)

    def generate(self, edit, interventions=(), capture=()) -> Generation:
        """The generation when this look or the cache has it, else a promise of it (recorded)."""
        interventions = tuple(interventions)
        capture = tuple(as_capture(c) for c in capture)
        key = self._model.key(edit, interventions, capture)
        if key not in self.memo:
            hit = self._model.lookup(key, edit, interventions)
            if hit is None:
                request = Request(key, edit, interventions, capture)
                self.missed.setdefault(key, request)
                return _Promise(request)  # type: ignore[return-value]
            self.memo[key] = hit
        return self.memo[key]


def _values_form(values) -> tuple | None:
    """What must agree for a patch's values to stack across samples: keys, shapes and dtypes
    (``None``: values already batched, ``[batch, n, hidden]``, which are not stacked again)."""
    items = [((), values)] if isinstance(values, torch.Tensor) else sorted(values.items(), key=lambda kv: str(kv[0]))
    if any(t.ndim != 2 for _, t in items):
        return None
    positions = getattr(values, "positions", {})
    return (type(values).__name__, tuple((k, tuple(t.shape), str(t.dtype)) for k, t in items),
            tuple(sorted((str(k), tuple(v.tolist())) for k, v in positions.items())))


def _form(model: CachingModel, request: Request) -> tuple:
    """The batch key of a request: the edit's shape, the positions of the token groups its captures and
    patches use (knockouts block each row's own, ``engine.batch``), the interventions with a patch's
    values reduced to their form, and the captures asked for."""
    edit, table = request.edit, model.table
    layout = model.layout(edit)
    shared = {it.tokens for it in (*request.interventions, *request.capture) if isinstance(it, (Patch, Capture))}
    forms: list[tuple] = []
    for it in request.interventions:
        if isinstance(it, Patch):
            form = _values_form(it.values)
            if form is None:
                return ("alone", request.key)
            forms.append(("patch", table.name(it.site), it.tokens, it.steps, form))
        else:
            forms.append(("same", it.resolved(table).key()))
    groups = tuple(sorted((g, tuple(t.tolist())) for g, t in layout.groups.items() if g in shared))
    return (edit.height, edit.width, edit.steps, edit.reference is None, layout.n_ref, groups, tuple(forms),
            tuple(sorted(c.resolved(table).key() for c in request.capture)))


def _stacked(requests: Sequence[Request]) -> tuple:
    """The interventions of a batch: the first request's, each patch's values stacked per sample."""
    out = []
    for i, it in enumerate(requests[0].interventions):
        if isinstance(it, Patch):
            vals = [r.interventions[i].values for r in requests]
            if isinstance(vals[0], torch.Tensor):
                stacked = torch.stack(vals)
            else:
                stacked = stack_captures([v if isinstance(v, Captures) else Captures(dict(v)) for v in vals])
            out.append(Patch(it.site, stacked, it.tokens, it.steps))
        else:
            out.append(it)
    return tuple(out)


def _compute(model: CachingModel, pending: dict[str, Request], memo: dict[str, Generation], batch: int) -> None:
    """Compute every pending request (batches of up to ``batch`` that share a form) into the cache and ``memo``."""
    groups: dict[tuple, list[Request]] = {}
    for req in pending.values():
        groups.setdefault(_form(model, req), []).append(req)
    for members in groups.values():
        for start in range(0, len(members), batch):
            chunk = members[start:start + batch]
            with contextlib.ExitStack() as stack:
                mine = []
                for req in chunk:
                    held = stack.enter_context(model.cache.lease(req.key, wait=False))
                    hit = model.lookup(req.key, req.edit, req.interventions, repair=True) if held else None
                    if hit is not None:
                        memo[req.key] = hit
                    elif held:
                        mine.append(req)
                    # not held: another process computes it; the one-by-one path below waits for it
                if len(mine) > 1:
                    t0 = time.perf_counter()
                    gens = model.model.generate_many([r.edit for r in mine], _stacked(mine), mine[0].capture)
                    seconds = (time.perf_counter() - t0) / len(mine)
                    for req, gen in zip(mine, gens):
                        gen = replace(gen, interventions=req.interventions)
                        model.store(req.key, gen, seconds, capture=bool(req.capture))
                        memo[req.key] = gen
            for req in chunk:
                if req.key not in memo:  # a group of one, or a generation another process holds
                    memo[req.key] = model.generate(req.edit, req.interventions, req.capture)


def run_batched(model, jobs: Sequence[Callable[[Any], T]], batch: int) -> list[T]:
    """``[job(model) for job in jobs]``, with the generations they need computed ``batch`` at a time
    (module doc). Without batching (``batch <= 1``, fewer than two jobs, or a model without a
    generation cache) the jobs simply run one after another."""
    if batch <= 1 or len(jobs) < 2 or not isinstance(model, CachingModel):
        return [job(model) for job in jobs]
    proxy = Prefetch(model)
    results: list = [None] * len(jobs)
    todo = list(range(len(jobs)))
    while todo:
        pending: dict[str, Request] = {}
        stopped = []
        for i in todo:
            proxy.missed = {}
            try:
                result = jobs[i](proxy)
            except Exception:  # noqa: BLE001 - a job that missed a generation is retried once it is there
                if not proxy.missed:
                    raise
            if proxy.missed:
                pending.update({k: r for k, r in proxy.missed.items() if k not in pending})
                stopped.append(i)
            else:
                results[i] = result
        if pending:
            _compute(model, pending, proxy.memo, batch)
        todo = stopped
    return results
