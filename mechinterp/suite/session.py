"""One suite session per pytest process: the model, judges, caches and the claims' outcomes.

Workers (pytest-xdist) each hold one; they share the on-disk generation and verdict caches
and write their verdict rows to ``<run>/parts/<worker>.jsonl``. The controller (or the only
process, without xdist) merges the parts into one run folder with ``junit.xml`` and
``report.html`` at the end.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from mechinterp.io import atomic_write
from mechinterp.report.meta import RunMeta, library_versions
from mechinterp.resources import DEFAULT_ORGANISM, default_model
from mechinterp.suite.models import resolve_model
from mechinterp.suite.runfolder import record_fingerprint, shaping_settings
from mechinterp.suite.runner import ClaimOutcome, ClaimRunner, ClaimSkipped
from mechinterp.suite import PARTS
from mechinterp.suite.settings import Settings, batch_size, judge_kind


class BudgetExhausted(ClaimSkipped):
    """The run's generation or dollar budget is used up."""


class ModelUnavailable(RuntimeError):
    """``--model`` could not be loaded, or is not the model the run folder's rows were made with: the run
    stops with this one message (every claim needs it)."""


class SuiteSession:
    """Lazily loads what claims need and runs them; ``check(claim)`` is what a claim test calls."""

    def __init__(self, settings: Settings, run_dir: Path, worker: str = "main", progress=None):
        self.settings = settings
        self.progress = progress  # a ``suite.progress.Progress``, or None
        self.run_dir = run_dir
        self.worker = worker
        self._models: dict[str, object] = {}  # model spec -> model behind the generation cache
        self._model_errors: dict[str, str] = {}
        self._runners: dict[str, ClaimRunner] = {}
        self._judges: dict[str, object] = {}
        self._verdict_cache = None
        self.registry = None
        self.claim_files: list[str] = []
        self.threads: int | None = None  # torch intra-op threads this process ran its claims with
        self.started = time.time()

    # -- resources --------------------------------------------------------------------------
    def model_spec(self, family: str | None = None) -> str:
        """The model a claim of ``family`` runs on: ``--mi-model``, else that family's shipped default
        (``mechinterp.resources.default_model``: ``identity-image`` for human claims, else padding-routed)."""
        return self.settings.model or default_model(family)

    @property
    def _model(self):
        """The default model if it is loaded (what the run's metadata describes), else ``None``."""
        return self._models.get(self.model_spec())

    @property
    def model(self):
        """The default model (:meth:`model_for` of no family)."""
        return self.model_for(None)

    def model_for(self, family: str | None):
        """The model a claim of ``family`` runs on, behind the generation cache (loaded on first use, once
        per process)."""
        spec = self.model_spec(family)
        if spec in self._model_errors:
            raise ModelUnavailable(self._model_errors[spec])
        if spec not in self._models:
            import mechinterp
            from mechinterp.suite.gencache import CachingModel, GenerationCache
            from mechinterp.suite.threads import apply_thread_policy

            self.threads = apply_thread_policy(self.settings.threads, self.settings.device)
            try:
                path = resolve_model(spec)
                model = mechinterp.load(path, device=self.settings.device, dtype=self.settings.dtype,
                                        generator=self.settings.generator)
            except Exception as err:  # noqa: BLE001 - whatever the loader raises, the run cannot go on
                self._model_errors[spec] = f"--mi-model {spec!r} cannot be loaded: {type(err).__name__}: {err}"
                raise ModelUnavailable(self._model_errors[spec]) from None
            cached = CachingModel(model, GenerationCache(self.settings.cache_dir))
            try:  # before any claim runs on it: the run folder's rows are of this very model, or it stops
                record_fingerprint(self.run_dir, spec, cached.fingerprint)
            except ValueError as err:
                self._model_errors[spec] = str(err)
                raise ModelUnavailable(str(err)) from None
            self._models[spec] = cached
        return self._models[spec]

    @property
    def runner(self) -> ClaimRunner:
        """The default model's claim runner (:meth:`runner_for` of no family)."""
        return self.runner_for(None)

    def runner_for(self, family: str | None) -> ClaimRunner:
        """The claim runner of ``family``'s model (one per model and process, so cells shared by relations
        run once); its judges are the objective ones the model's task families allow. A relation between
        families runs each cell on its own family's runner (each runner's ``runner_for`` is this method)."""
        spec = self.model_spec(family)
        if spec not in self._runners:
            model = self.model_for(family)
            glyph = dict(model.meta.tasks).get("human") == "glyph"
            self._runners[spec] = ClaimRunner(model, lambda qid: self.judge_for(qid, glyph=glyph),
                                              samples=self.settings.samples, seed=self.settings.seed,
                                              data_dir=self.settings.data_dir, on_generation=self._check_budget,
                                              on_progress=self.progress.update if self.progress else None,
                                              batch=batch_size(self.settings, model.device.type),
                                              runner_for=self.runner_for)
        return self._runners[spec]

    def _cache(self):
        if self._verdict_cache is None:
            from mechinterp.judges import VerdictCache

            self._verdict_cache = VerdictCache(self.settings.cache_dir)
        return self._verdict_cache

    def judge_for(self, question_id: str, glyph: bool = False):
        """The judge for a question under ``--judge`` (auto: an objective judge where one answers it, else
        Anthropic); ``glyph``: the model's human family is the glyph family (the glyph judge answers it)."""
        kind = judge_kind(self.settings.judge, question_id, glyph)
        if kind is None:
            raise ClaimSkipped(f"--mi-judge color answers only colour (and, on the identity organisms, identity) "
                               f"questions; {question_id!r} needs --mi-judge anthropic")
        if kind not in self._judges:
            self._judges[kind] = self._make_judge(kind)
        return self._judges[kind]

    def _make_judge(self, kind: str):
        from mechinterp.judges import ColorJudge, GlyphJudge

        if kind == "color":
            return ColorJudge(cache=self._cache())
        if kind == "glyph":
            return GlyphJudge(cache=self._cache())
        from mechinterp.judges import AnthropicJudge  # only here: the pixel judges' runs never import its SDK
        from mechinterp.judges.client import has_api_key

        if not has_api_key():
            raise ClaimSkipped("the Anthropic judge needs ANTHROPIC_API_KEY in the environment (or use --mi-judge color for colour claims)")
        return AnthropicJudge(self.settings.judge_config, batch=(kind == "anthropic-batch"), cache=self._cache())

    def _check_budget(self) -> None:
        s = self.settings
        if s.budget_generations is not None and sum(m.generated for m in self._models.values()) >= s.budget_generations:
            raise BudgetExhausted(f"generation budget of {s.budget_generations} used up in worker {self.worker}")
        if s.budget_dollars is not None and self.cost() >= s.budget_dollars:
            raise BudgetExhausted(f"judge budget of ${s.budget_dollars:.2f} used up in worker {self.worker}")

    def cost(self) -> float:
        """Judge dollars spent by this process so far."""
        total = 0.0
        for judge in self._judges.values():
            usage = getattr(judge, "usage", None)
            total += float(getattr(usage, "cost_usd", 0.0) or 0.0)
        return total

    # -- claims -----------------------------------------------------------------------------
    def check(self, claim, registry: dict) -> ClaimOutcome:
        """Run one claim and record its verdict rows; raises ``ClaimSkipped`` when it cannot run."""
        try:
            outcome = self.runner_for(claim.family).run(claim, registry)
        finally:
            if self.progress:
                self.progress.finish()
        self._record(outcome)
        return outcome

    def _record(self, outcome: ClaimOutcome) -> None:
        rows = outcome.rows  # a relation's are its two cells' rows
        parts = self.run_dir / PARTS
        parts.mkdir(parents=True, exist_ok=True)
        def ends(ci):
            return None if ci is None else {"low": ci.low, "high": ci.high, "confidence": ci.confidence}

        line = json.dumps({"claim": outcome.claim.id, "decision": outcome.decision.value, "looks": outcome.looks,
                           "sweep": outcome.sweep, "transition": outcome.transition, "plan": outcome.plan,
                           "note": outcome.note,
                           "interval": ends(outcome.interval),
                           "worst_case": ends(outcome.worst_case) if outcome.abstained else None,
                           "rows": [r.to_dict() for r in rows], "time": time.time()}, ensure_ascii=False)
        with open(parts / f"{self.worker}.jsonl", "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def metadata(self) -> RunMeta:
        """This process's part of the run's metadata: settings, model, generations and judge usage."""
        from mechinterp.claims import default_registry_path

        s = self.settings
        budget = (f"{s.budget_generations} generations" if s.budget_generations is not None else
                  f"${s.budget_dollars:g}" if s.budget_dollars is not None else None)
        meta = RunMeta(model=s.model or ", ".join(self._models) or DEFAULT_ORGANISM, judge=s.judge, seed=s.seed, samples=s.samples, budget=budget,
                       dtype=s.dtype, versions=library_versions(), started=self.started, finished=time.time(),
                       registry=[str(default_registry_path()), *self.claim_files])
        shaping = shaping_settings(s)
        meta.judge_config, meta.data_dir = shaping["judge_config"], shaping["data_dir"]
        m = self._model or next(iter(self._models.values()), None)  # the default model, else the one loaded
        if m is not None:
            meta.revision, meta.fingerprint = m.source.revision, m.fingerprint
            meta.device, meta.dtype = _device_text(m.device), str(m.dtype).removeprefix("torch.")
            meta.sampling = m.sampling
            loaded = list(self._models.values())
            meta.generations, meta.cache_hits = sum(x.generated for x in loaded), sum(x.cache.hits for x in loaded)
            meta.generation_seconds = round(sum(x.generation_seconds for x in loaded), 3)
            meta.cache_rejected += sum(x.cache.rejected for x in loaded)
            meta.cache_damage += [d for x in loaded for d in x.cache.damaged]
        if self._verdict_cache is not None:
            meta.cache_rejected += self._verdict_cache.rejected
            meta.cache_damage += self._verdict_cache.damaged
        if self._judges:
            meta.judge_model = ", ".join(sorted(f"{j.name}:{j.model}" for j in self._judges.values()))
            usages = [getattr(j, "usage", None) for j in self._judges.values()]
            paid = [u for u in usages if u is not None]
            meta.judge_calls = sum(u.calls for u in paid)
            meta.judge_input_tokens = sum(u.input_tokens for u in paid)
            meta.judge_output_tokens = sum(u.output_tokens for u in paid)
            meta.judge_reasked = sum(getattr(u, "reasked", 0) for u in paid)
            costs = [u.cost_usd for u in paid]
            meta.judge_cost_usd = None if None in costs else round(sum(costs), 6)  # offline judges cost 0
        return meta

    def write_metadata(self) -> Path:
        """Save :meth:`metadata` as ``<run>/parts/<worker>.meta.json`` (atomically) for the merge."""
        path = self.run_dir / PARTS / f"{self.worker}.meta.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(self.metadata().to_dict(), default=str))
        return path


def _device_text(device) -> str:
    """``cuda:0 (NVIDIA H200)`` or ``cpu``: where the images were generated."""
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def write_outcomes(run_dir: Path, worker: str, outcomes: dict[str, dict]) -> Path:
    """Save this process's claim outcomes (``{claim id: {outcome, message, nodeid}}``, pytest's view: passed,
    failed, error, skipped, inconclusive) as ``<run>/parts/<worker>.outcomes.json``, atomically."""
    path = run_dir / PARTS / f"{worker}.outcomes.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(outcomes, ensure_ascii=False))
    return path


def crash_outcome(worker: str | None, nodeid: str) -> dict:
    """The outcome a claim is saved with as it starts (see :func:`write_outcomes`): an error naming the
    process, which stands if that process dies before the claim's reports replace it."""
    who = f"worker {worker}" if worker else "the pytest process"
    return {"outcome": "error", "message": f"{who} crashed while running this claim", "nodeid": nodeid,
            "crashed": True}


def merge_outcomes(run_dir: Path) -> dict[str, dict]:
    """Every worker's claim outcomes (see :func:`write_outcomes`), pooled."""
    out: dict[str, dict] = {}
    for part in sorted((run_dir / PARTS).glob("*.outcomes.json")):
        try:
            out.update(json.loads(part.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            continue
    return out


def merge_parts(run_dir: Path) -> tuple[list, dict[str, dict]]:
    """All workers' verdict rows (deduplicated by claim and task) and the sequential decisions
    (with the interval each was made on and the claim's plan)."""
    from mechinterp.report.run import VerdictRow

    rows: dict[tuple[str, str], VerdictRow] = {}
    decisions: dict[str, dict] = {}
    for part in sorted((run_dir / PARTS).glob("*.jsonl")):
        for line in part.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a killed worker
            decisions[rec["claim"]] = {k: rec.get(k) for k in ("decision", "looks", "sweep", "transition", "plan", "note",
                                                               "interval", "worst_case")}
            for r in rec["rows"]:
                rows.setdefault((r["claim_id"], r["task_id"]), VerdictRow.from_dict(r))
    return list(rows.values()), decisions
