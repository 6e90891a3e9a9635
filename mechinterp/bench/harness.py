"""The benchmark harness: every setting timed as a ratio against a clean generation, one result format.

What is timed comes from ``mechinterp.bench.settings`` (whole pipeline generations, or one
generation's transformer forwards). Each setting is timed ``repeats`` times after a warm-up, in
one process, in rounds that run every setting once; the ratio is median time / median clean time
(the median resists other load on a shared machine; mean, std and min are saved too). Peak memory is the CUDA allocator's
high-water mark on GPU and the process RSS high-water mark (sampled) on CPU.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from mechinterp.io import atomic_write

#: who does an operation: the engine (in each knockout mode) and its peers, in table-column order
ENGINE, FLEX, DENSE, AUTHORS, HOOKS, NNSIGHT = "engine", "engine flex", "engine dense", "authors' mask", "hooks", "nnsight"
BY = (ENGINE, FLEX, DENSE, AUTHORS, HOOKS, NNSIGHT)


@dataclass
class Setting:
    """One benchmarked configuration: a name, what it measures, and the call that runs it once.

    ``per_call`` is how many generations one call makes (a batch); its times are divided by it.
    ``op`` is the operation (the same for the engine and its peers) and ``by`` who does it.
    """

    name: str
    group: str
    run: Callable[[], object] = field(repr=False)
    note: str = ""
    per_call: int = 1
    op: str = ""
    by: str = ENGINE


@dataclass
class Measurement:
    """Timing and memory of one setting."""

    name: str
    group: str
    mean_s: float
    std_s: float
    times_s: list[float]
    median_s: float = 0.0
    min_s: float = 0.0
    ratio: float = 1.0
    peak_mb: float = 0.0
    note: str = ""
    op: str = ""
    by: str = ENGINE


class _PeakRSS:
    """Samples the process RSS in a thread; ``peak_mb`` after the ``with`` block."""

    def __enter__(self):
        import psutil

        self._proc, self._stop, self.peak = psutil.Process(), threading.Event(), 0
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(0.005)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)
        self.peak_mb = self.peak / 2**20


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_once(setting: Setting, device: torch.device) -> tuple[float, float]:
    """Seconds and peak memory (MiB) of one call of ``setting.run``."""
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        setting.run()
        _sync(device)
        return time.perf_counter() - t0, torch.cuda.max_memory_allocated(device) / 2**20
    with _PeakRSS() as peak:
        t0 = time.perf_counter()
        setting.run()
        elapsed = time.perf_counter() - t0
    return elapsed, peak.peak_mb


def _measurement(setting: Setting, times: list[float], peak_mb: float) -> Measurement:
    std = statistics.stdev(times) if len(times) > 1 else 0.0
    return Measurement(setting.name, setting.group, statistics.fmean(times), std, times, statistics.median(times),
                       min(times), peak_mb=peak_mb, note=setting.note, op=setting.op or setting.name, by=setting.by)


def run_bench(settings: list[Setting], device, repeats: int, log=print) -> list[Measurement]:
    """Measure every setting (one warm-up each, then ``repeats`` rounds that run every setting once,
    so drifting load on a shared machine hits all settings alike); ratios are against ``clean``."""
    device = torch.device(device)
    for s in settings:
        s.run()
    times: dict[str, list[float]] = {s.name: [] for s in settings}
    peaks: dict[str, float] = {s.name: 0.0 for s in settings}
    for r in range(repeats):
        for s in settings:
            t, peak = _time_once(s, device)
            times[s.name].append(t)
            peaks[s.name] = max(peaks[s.name], peak)
        log(f"  round {r + 1}/{repeats} done")
    results = [_measurement(s, times[s.name], peaks[s.name]) for s in settings]
    clean = next(m for m in results if m.name == "clean").median_s
    for s, m in zip(settings, results):
        if s.per_call > 1:  # per generation
            n = s.per_call
            m.mean_s, m.std_s, m.median_s, m.min_s = m.mean_s / n, m.std_s / n, m.median_s / n, m.min_s / n
            m.times_s = [t / n for t in m.times_s]
        m.ratio = m.median_s / clean
    return results


def environment(device) -> dict:
    """Device, versions and date of a bench run."""
    import diffusers

    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return {"device": str(device), "device_name": name, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "diffusers": diffusers.__version__, "python": platform.python_version(),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def save(path: str | Path, bench: str, config: dict, results: list[Measurement], env) -> Path:
    """Write one bench's results as JSON (device, versions, date, config, per-setting numbers).

    ``env`` is the :func:`environment` dict of the run, or the device to compute it for.
    """
    doc = {"bench": bench, "environment": env if isinstance(env, dict) else environment(env), "config": config,
           "results": [asdict(m) for m in results]}
    return atomic_write(path, json.dumps(doc, indent=2, sort_keys=False) + "\n")


def table(results: list[Measurement]) -> str:
    """The ratio table as Markdown."""
    rows = ["| setting | group | median ms | std ms | × clean | peak MiB | note |", "|---|---|---:|---:|---:|---:|---|"]
    for m in results:
        rows.append(f"| {m.name} | {m.group} | {m.median_s * 1000:.1f} | {m.std_s * 1000:.1f} | {m.ratio:.2f} | "
                    f"{m.peak_mb:.0f} | {m.note} |")
    return "\n".join(rows)


def peer_table(results: list[Measurement]) -> str:
    """The ratios as Markdown with one row per operation and one column per peer (who did it)."""
    ops = list(dict.fromkeys(m.op for m in results))
    cols = [b for b in BY if any(m.by == b for m in results)] + sorted({m.by for m in results} - set(BY))
    cell = {(m.op, m.by): f"{m.ratio:.2f}" for m in results}
    rows = ["| × clean | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    rows += [f"| {op} | " + " | ".join(cell.get((op, c), "—") for c in cols) + " |" for op in ops]
    return "\n".join(rows)
