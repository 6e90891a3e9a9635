"""``RunMeta``: what reproduces a run and what it cost — the one record behind every ``run.json``.

The suite writes it (one per worker, pooled at the end), ``load_released`` describes the
authors' verdicts with it, ``merge`` pools several runs' records and the HTML report shows it.
Pooling keeps everything: counts, tokens, dollars and seconds are summed; settings that may
differ between shards (seed, samples, device, git commit, ...) stay one value when every shard
agrees and become the list of the shards' values otherwise; the model, its revision and the
judge policy must agree (verdicts of different models are never pooled). An unknown value
(``None``: e.g. a worker that never loaded the model) is left out, never a disagreement. A pooled
record belongs to no one shard: its ``shard`` is unset unless given.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

FORMAT = 2
#: fields every pooled record must agree on
MUST_AGREE = ("model", "revision", "judge")
#: fields summed when pooling
SUMMED = ("workers", "generations", "cache_hits", "generation_seconds", "judge_calls", "judge_input_tokens",
          "judge_output_tokens", "judge_cost_usd", "judge_reasked", "cache_rejected", "duplicates", "conflicts")
#: fields kept as one value when the pooled records agree, else as the list of their values
LISTED = ("fingerprint", "judge_model", "judge_config", "data_dir", "seed", "samples", "budget", "device", "dtype", "sampling", "git_commit",
          "versions")


@dataclass
class RunMeta:
    """Metadata of one run folder (``run.json``)."""

    name: str | None = None
    model: str | None = None  # as asked for: organism name, local folder or hub id
    revision: str | None = None  # the hub snapshot's commit
    fingerprint: Any = None  # the generation cache's model key (content, wiring, dtype, device type)
    judge: str | None = None  # the --judge policy (auto, color, anthropic, ...) or "released"
    judge_model: Any = None  # the judges that answered, e.g. "color:cielab-de2000-v1(...)"
    judge_config: Any = None  # the Claude judge's verdict settings (model id, max_tokens, reask)
    data_dir: Any = None  # the data dir: resolved path and digest of its task lists (None: not set)
    seed: Any = None
    samples: Any = None  # tasks (or pairs) per claim at most
    budget: Any = None  # --budget as given ("2000" generations, "$25")
    device: Any = None  # where the images were generated, e.g. "cuda:0 (NVIDIA H200)"
    dtype: Any = None
    sampling: Any = None  # noise generator's device type, guidance, CFG (``Model.sampling``)
    git_commit: Any = None
    versions: Any = field(default_factory=dict)  # python, mechinterp, torch, diffusers, transformers
    started: float | None = None  # epoch seconds
    finished: float | None = None
    workers: int = 1
    generations: int = 0  # images generated (cache misses)
    cache_hits: int = 0
    generation_seconds: float = 0.0  # time spent generating them
    judge_calls: int = 0  # paid judge calls (cached verdicts cost nothing)
    judge_input_tokens: int = 0
    judge_output_tokens: int = 0
    judge_cost_usd: float | None = None  # None: no priced judge answered
    judge_reasked: int = 0  # judge calls repeated because the reply was no verdict (malformed, empty, pass=2)
    cache_rejected: int = 0  # damaged cache entries (generations, verdict rows) reported, deleted and recomputed
    cache_damage: list[dict] = field(default_factory=list)  # each of them: {"path", "reason"} (pooled: every distinct one)
    registry: list[str] = field(default_factory=list)  # claim files the results were pooled with
    source: str | None = None  # released verdicts: their folder
    files: list[str] = field(default_factory=list)  # released verdicts: the CSVs read
    shard: str | None = None  # --mi-shard "I/N" of one shard of a sharded run (None: the whole selection)
    merged_from: list[str] = field(default_factory=list)
    duplicates: int = 0  # merge: samples judged in several runs (counted once)
    conflicts: int = 0  # merge: of those, samples whose verdicts differ
    format: int = FORMAT

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "run metadata") -> RunMeta:
        """Build from ``run.json``'s content; unknown keys are an error naming them and ``where``."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{where}: unknown run metadata keys {unknown} (format {data.get('format')!r}; "
                             f"this mechinterp reads format {FORMAT} with keys {sorted(names)})")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the content of ``run.json``)."""
        return asdict(self)

    @property
    def wall_seconds(self) -> float | None:
        """Seconds from start to finish, when both are known."""
        return None if self.started is None or self.finished is None else self.finished - self.started

    @classmethod
    def pool(cls, metas: list[RunMeta], **overrides: Any) -> RunMeta:
        """One record for several runs or workers (see the module docstring); ``overrides`` set fields."""
        if not metas:
            raise ValueError("pooling run metadata needs at least one record")
        out: dict[str, Any] = {}
        def known(name: str) -> list:  # None is "not known here" (a worker that never loaded the model)
            return [v for m in metas if (v := getattr(m, name)) not in (None, {}, [])]

        for name in MUST_AGREE:
            values = known(name)
            if len({repr(v) for v in values}) > 1:
                raise ValueError(f"cannot pool runs with different {name}s: {sorted({str(v) for v in values})}")
            out[name] = values[0] if values else None
        for name in SUMMED:
            values = known(name)
            out[name] = (round(sum(values), 6) if any(isinstance(v, float) for v in values) else sum(values)) if values else None
        for name in LISTED:
            values = known(name)
            out[name] = None if not values else values[0] if all(v == values[0] for v in values) else values
        starts = [m.started for m in metas if m.started is not None]
        ends = [m.finished for m in metas if m.finished is not None]
        out["started"], out["finished"] = (min(starts) if starts else None), (max(ends) if ends else None)
        out["registry"] = sorted({f for m in metas for f in m.registry}, key=lambda f: (not f.endswith("registry.toml"), f))
        out["files"] = sorted({f for m in metas for f in m.files})
        out["cache_damage"] = list({(d["path"], d["reason"]): d for m in metas for d in m.cache_damage}.values())
        out["name"], out["source"] = metas[0].name, metas[0].source
        out.update(overrides)
        return cls(**out)

    def rows(self) -> list[tuple[str, str]]:
        """``(label, text)`` pairs for the report's header, in reading order; unknown values left out."""
        def when(t: float | None) -> str | None:
            return None if t is None else time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(t))

        def text(v: Any) -> str | None:
            if v in (None, "", [], {}):
                return None
            if isinstance(v, dict):
                return ", ".join(f"{k} {val}" for k, val in v.items())
            if isinstance(v, list):
                return " | ".join(t for t in map(text, v) if t)
            return str(v)

        cost = None if self.judge_cost_usd is None else f"${self.judge_cost_usd:.4f}"
        tokens = (f"{self.judge_calls} calls, {self.judge_input_tokens:,} in / {self.judge_output_tokens:,} out tokens"
                  if self.judge_calls or self.judge_input_tokens else None)
        wall = self.wall_seconds
        timing = None if wall is None else (f"{wall:.1f} s wall" + (f", {self.generation_seconds:.1f} s generating"
                                                                     if self.generation_seconds else ""))
        rows = [
            ("model", text(self.model)), ("revision", text(self.revision)), ("fingerprint", text(self.fingerprint)),
            ("judge", text(self.judge)), ("judge model", text(self.judge_model)),
            ("judge config", text(self.judge_config)), ("data dir", text(self.data_dir)), ("seed", text(self.seed)),
            ("samples per claim", text(self.samples)), ("budget", text(self.budget)), ("device", text(self.device)),
            ("dtype", text(self.dtype)), ("sampling", text(self.sampling)), ("git commit", text(self.git_commit)),
            ("versions", text(self.versions)),
            ("started", when(self.started)), ("finished", when(self.finished)), ("time", timing),
            ("workers", str(self.workers) if self.workers != 1 else None),
            ("generations", f"{self.generations} generated, {self.cache_hits} from the cache"
             if self.generations or self.cache_hits else None),
            ("judge calls", tokens), ("judge cost", cost),
            ("re-asked", f"{self.judge_reasked} judge replies were no verdict and were asked again"
             if self.judge_reasked else None),
            ("damaged cache entries", f"{self.cache_rejected} reported, deleted and recomputed"
             + "".join(f"; {d['path']}: {d['reason']}" for d in self.cache_damage)
             if self.cache_rejected or self.cache_damage else None), ("source", text(self.source)),
            ("shard", text(self.shard)), ("merged from", text(self.merged_from)),
            ("merge", f"{self.duplicates} duplicate samples dropped ({self.conflicts} conflicting)"
             if self.merged_from else None),
        ]
        return [(k, v) for k, v in rows if v is not None]


#: the distributions whose versions a run records
VERSIONED = ("mechinterp", "torch", "diffusers", "transformers", "anthropic")


def library_versions() -> dict[str, str]:
    """Python's and the installed libraries' versions (from their metadata: nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in VERSIONED:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out
