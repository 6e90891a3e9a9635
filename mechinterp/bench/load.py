"""``mechinterp bench --load N``: the cold main job, quiet and under N busy processes, as a ratio.

The main job (``pytest claims/ -m color``) runs in a subprocess with a fresh generation cache and
run folder (temporary, removed afterwards) twice: once as the machine is, once with ``N`` extra
processes that each spin a core. The ratio loaded / quiet is the figure: it says how much a shared
CI runner slows the suite, independent of how fast this machine is. The suite's thread policy
(``mechinterp.suite.threads``) is what keeps it small; ``threads`` runs the job with another
``MECHINTERP_THREADS`` to compare. ``pytest_args`` narrows the job (``-k <claim>``), e.g. to check
the bench itself in seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

SPIN = "while True: pass"


@dataclass
class JobTime:
    """One run of the main job: wall seconds, pytest's exit code, the load average and busy processes, and the
    CPU seconds the job's processes used (``cpu / seconds`` is the share of a core it got)."""

    seconds: float
    returncode: int
    busy: int
    loadavg: float  # 1-minute load average when the job ended
    cpu_seconds: float = 0.0  # user + system time of the job and its children

    @property
    def core_share(self) -> float:
        """Cores the job had on average (``cpu_seconds / seconds``)."""
        return self.cpu_seconds / self.seconds if self.seconds > 0 else 0.0


@dataclass
class LoadResult:
    """The quiet and loaded runs of the main job and their ratio."""

    command: list[str]
    threads: str
    quiet: JobTime
    loaded: JobTime
    ratio: float = field(init=False)

    def __post_init__(self) -> None:
        self.ratio = round(self.loaded.seconds / self.quiet.seconds, 3) if self.quiet.seconds > 0 else float("inf")

    def to_dict(self) -> dict:
        """JSON-ready fields (the ratio included)."""
        return asdict(self)

    def line(self) -> str:
        """The bench row: quiet and loaded seconds, the ratio and the load it ran under."""
        return (f"main job, cold, threads={self.threads}: quiet {self.quiet.seconds:.1f} s (load "
                f"{self.quiet.loadavg:.1f}, {self.quiet.core_share:.2f} cores), with {self.loaded.busy} busy processes "
                f"{self.loaded.seconds:.1f} s (load {self.loaded.loadavg:.1f}, {self.loaded.core_share:.2f} cores): "
                f"x{self.ratio:.2f}")


def job_command(target: str | None = None, pytest_args: list[str] | tuple = ()) -> list[str]:
    """``python -m pytest <target> -m color -q ...``: ``target`` defaults to ``claims/`` in a checkout, else
    the installed paper claims (``--pyargs mechinterp.claims.paper``)."""
    if target is None:
        target = "claims/" if Path("claims").is_dir() else None
    where = [target] if target else ["--pyargs", "mechinterp.claims.paper"]
    return [sys.executable, "-m", "pytest", *where, "-m", "color", "-q", "-p", "no:cacheprovider", *pytest_args]


def spin(n: int) -> list[subprocess.Popen]:
    """``n`` processes that each keep one core busy (stopped by :func:`stop`)."""
    return [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(n)]


def stop(procs: list[subprocess.Popen]) -> None:
    """Kill the processes :func:`spin` started and reap them."""
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def run_job(command: list[str], busy: int = 0, threads: str | None = None, cwd: str | Path | None = None) -> JobTime:
    """Time one cold run of ``command`` (a fresh cache and run folder, removed afterwards) with ``busy``
    spinning processes beside it."""
    with tempfile.TemporaryDirectory(prefix="mechinterp-load-") as tmp:
        env = {**os.environ, "MECHINTERP_CACHE_DIR": str(Path(tmp) / "cache"),
               "MECHINTERP_REPORT": str(Path(tmp) / "run"), "MECHINTERP_PROGRESS": "off"}
        if threads is not None:
            env["MECHINTERP_THREADS"] = threads
        procs = spin(busy)
        try:
            if busy:
                time.sleep(1.0)  # let the spinners take their cores
            start, before = time.perf_counter(), _children_cpu()
            rc = subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
            seconds, cpu = time.perf_counter() - start, _children_cpu() - before
            load = os.getloadavg()[0]
        finally:
            stop(procs)
    return JobTime(seconds=round(seconds, 2), returncode=rc, busy=busy, loadavg=round(load, 2), cpu_seconds=round(cpu, 2))


def _children_cpu() -> float:
    """User + system seconds of this process's waited-for children (the job; the spinners are reaped later)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(load: int, target: str | None = None, pytest_args: list[str] | tuple = (), threads: str | None = None,
            cwd: str | Path | None = None) -> LoadResult:
    """The cold main job quiet, then with ``load`` busy processes; ``ValueError`` for ``load < 1``."""
    if load < 1:
        raise ValueError(f"--load {load}: expected a number of busy processes >= 1")
    command = job_command(target, pytest_args)
    quiet = run_job(command, 0, threads, cwd)
    loaded = run_job(command, load, threads, cwd)
    return LoadResult(command=command, threads=threads or "auto", quiet=quiet, loaded=loaded)
