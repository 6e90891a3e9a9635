"""Suite settings: every option from the command line, ``[tool.pytest.ini_options]`` or the environment.

Precedence: command line (``--mi-<name>``, or ``--<name>`` where that is free), then environment (``MECHINTERP_<NAME>``), then the ini file, then
the default. One table (``OPTIONS``) defines them all, so the pytest options, the ini keys
and the environment variables cannot drift apart.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

JUDGES = ("auto", "color", "anthropic", "anthropic-batch")


@dataclass(frozen=True)
class Option:
    """One suite option: its name, default and help text."""

    name: str
    default: str | None
    help: str
    switch: bool = False  # a flag without a value (``--mi-strict`` means on); ini/env take on/off

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. ``--mi-cache-dir`` (prefixed: it cannot collide with other projects' options)."""
        return "--mi-" + self.name.replace("_", "-")

    @property
    def alias(self) -> str:
        """The unprefixed flag, e.g. ``--cache-dir``: an alias only where no other plugin or conftest has it."""
        return "--" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        """The option's attribute on ``config.option``, e.g. ``mechinterp_cache_dir``."""
        return "mechinterp_" + self.name

    @property
    def ini(self) -> str:
        """The ``[tool.pytest.ini_options]`` key, e.g. ``mechinterp_cache_dir``."""
        return "mechinterp_" + self.name

    @property
    def env(self) -> str:
        """The environment variable, e.g. ``MECHINTERP_CACHE_DIR``."""
        return "MECHINTERP_" + self.name.upper()


OPTIONS = (
    Option("model", None, "organism name, local folder or Hugging Face id (default: the 'padding-routed' organism)"),
    Option("judge", "auto", "auto (objective judge where one exists, else Anthropic), color, anthropic, anthropic-batch"),
    Option("judge_config", None, "the Claude judge's settings as key=value,... (model, base_url, max_concurrency, "
                                 "max_tokens, max_retries, timeout, backoff_base, backoff_cap, batch_poll_interval, "
                                 "batch_max_rounds, batch_timeout)"),
    Option("samples", None, "cap on each claim's planned budget of tasks (or pairs); default: each claim's own "
                            "budget, planned for 90 % power (a claim the cap makes undecidable says so and runs nothing)"),
    Option("budget", None, "total budget per worker: N generations, or $X of judge cost (e.g. '2000' or '$25')"),
    Option("seed", "0", "seed of the tasks' sampling order"),
    Option("cache_dir", ".mechinterp-cache", "folder of the generation and verdict caches (shared by workers and reruns)"),
    Option("data_dir", None, "data directory with the style/human/SUN397 images (see docs/data-dir.md)"),
    Option("device", None, "torch device (default: cuda when available, else cpu)"),
    Option("dtype", None, "model dtype: float32, bfloat16, float16 (default: as saved)"),
    Option("generator", "device", "where the initial noise is drawn: device (the model's, as the authors' runs) or cpu"),
    Option("report", None, "run folder for junit.xml/report.html (default: reports/<timestamp>-<model>)"),
    Option("shard", None, "run shard I of N of the claims ('I/N', 1-based) for a CI matrix"),
    Option("progress", "auto", "a progress line per claim at most every N seconds: auto (10 on a terminal, "
                               "60 in a log), off, or N"),
    Option("strict", "off", "a skipped or inconclusive claim fails (for CI), and missing prerequisites stop "
                            "the run before any claim (ini/env: on or off)", switch=True),
    Option("threads", "auto", "torch intra-op CPU threads per process: auto (1 when the model runs on the CPU, "
                              "torch's own choice on a GPU) or N (README: Threads)"),
    Option("batch", "auto", "generations computed together within a look: auto (16 when the model runs on the CPU, "
                            "1 on a GPU) or N; 1 when a generation --mi-budget is set (README: Batched looks)"),
)


@dataclass(frozen=True)
class Settings:
    """Resolved suite settings."""

    model: str | None
    judge: str
    samples: int | None
    budget_generations: int | None
    budget_dollars: float | None
    seed: int
    cache_dir: Path
    data_dir: Path | None
    device: str | None
    dtype: str | None
    generator: str
    report: Path | None
    shard: tuple[int, int] | None
    progress: float | None = None  # seconds between progress lines; None: none
    judge_config: object | None = None  # a mechinterp.judges.config.JudgeConfig; None: its defaults
    threads: int | None = None  # torch intra-op threads per process; None: auto (1 on CPU)
    strict: bool = False  # skipped and inconclusive claims fail
    batch: int | None = None  # generations per batch within a look; None: auto (see batch_size)


def judge_kind(judge: str, question_id: str | None, glyph: bool = False) -> str | None:
    """Which judge answers ``question_id`` under ``--mi-judge judge``: an objective judge under ``auto``
    or ``color`` — ``"color"`` for ``*.color`` questions, ``"glyph"`` for ``*.identity`` questions on a
    model where the glyph family stands for ``human`` (``glyph``: the identity organisms) —, else
    ``"anthropic"`` / ``"anthropic-batch"``, or ``None`` when ``--mi-judge color`` is asked a question no
    objective judge answers. The one rule the session's judge choice and the prerequisite check both read."""
    qid = str(question_id or "")
    objective = "color" if qid.endswith(".color") else "glyph" if glyph and qid.endswith(".identity") else None
    if judge == "color":
        return objective
    if judge == "auto":
        return objective or "anthropic"
    return judge


def raw_value(config, opt: Option) -> str | None:
    """An option's value by precedence: command line, environment, ini, default."""
    cli = config.getoption(opt.dest, default=None)
    if cli not in (None, ""):
        return str(cli)
    if os.environ.get(opt.env):
        return os.environ[opt.env]
    ini = config.getini(opt.ini)
    if ini not in (None, ""):
        return str(ini)
    return opt.default


def parse_budget(text: str | None) -> tuple[int | None, float | None]:
    """``'2000'`` → 2000 generations; ``'$25'`` / ``'25$'`` → 25 dollars; ``None`` → no budget. A budget of
    0 (or below) is an error, not a run that skips every claim and exits 0."""
    if text is None:
        return None, None
    t = text.strip()
    m = re.fullmatch(r"\$?\s*(\d+(?:\.\d+)?)\s*\$?", t)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"--mi-budget {text!r}: expected a positive number of generations ('2000') or dollars ('$25')")
    if "$" in t:
        return None, float(m.group(1))
    if "." in m.group(1):
        raise ValueError(f"--mi-budget {text!r}: a generation budget is a whole number")
    return int(m.group(1)), None


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``'2/4'`` → (2, 4); ``None`` → no sharding."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not (1 <= int(m.group(1)) <= int(m.group(2))):
        raise ValueError(f"--mi-shard {text!r}: expected I/N with 1 <= I <= N, e.g. 1/4")
    return int(m.group(1)), int(m.group(2))


def parse_progress(text: str, terminal: bool) -> float | None:
    """``'auto'`` → 10 s on a terminal, else 60 s; ``'off'`` → ``None``; ``'30'`` → 30 s."""
    t = text.strip().lower()
    if t == "auto":
        return 10.0 if terminal else 60.0
    if t == "off":
        return None
    try:
        value = float(t)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(f"--mi-progress {text!r}: expected auto, off or a number of seconds >= 0")
    return value


def parse_switch(opt: str, text: str) -> bool:
    """``on``/``true``/``yes``/``1`` → True, ``off``/``false``/``no``/``0`` → False; ``ValueError`` otherwise."""
    t = text.strip().lower()
    if t in ("on", "true", "yes", "1"):
        return True
    if t in ("off", "false", "no", "0"):
        return False
    raise ValueError(f"--mi-{opt} {text!r}: expected on or off")


#: the devices ``--mi-device`` takes (what ``mechinterp.load`` moves a pipeline to)
DEVICES = "cpu, cuda, cuda:N (N: a GPU index) or mps"


def parse_device(text: str | None, check_available: bool = True) -> str | None:
    """``--mi-device`` checked before anything runs: ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (``None``: the
    default, cuda when available), and, with ``check_available``, present on this machine (torch is imported
    only for a GPU device). ``ValueError`` naming the flag and the valid devices otherwise."""
    if text is None:
        return None
    t = text.strip().lower()
    m = re.fullmatch(r"(cpu|mps|cuda)(?::(\d+))?", t)
    if not m or (m.group(2) is not None and m.group(1) != "cuda"):
        raise ValueError(f"--mi-device {text!r}: expected {DEVICES}")
    if check_available and m.group(1) != "cpu":
        import torch

        if m.group(1) == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"--mi-device {text!r}: torch {torch.__version__} sees no MPS device here; expected {DEVICES}")
        count = torch.cuda.device_count() if m.group(1) == "cuda" and torch.cuda.is_available() else 0
        if m.group(1) == "cuda" and int(m.group(2) or 0) >= count:
            seen = f"{count} CUDA GPU{'s' * (count != 1)} (cuda:0 to cuda:{count - 1})" if count else "no CUDA GPU"
            raise ValueError(f"--mi-device {text!r}: torch {torch.__version__} sees {seen} here; expected {DEVICES}")
    return t


def check_cache_dir(path: Path) -> Path:
    """``--mi-cache-dir`` checked before anything runs: ``ValueError`` when it, or a folder above it, is a
    file, or when it is an existing folder in which no file can be created. Writability is tried (a
    temporary file made and removed), not read from permission bits, which say nothing for root or a
    read-only mount. A folder that does not exist yet is made by the first claim (nothing is created
    here: a session that runs no claims leaves no trace)."""
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        where = "is a file" if probe == path else f"{str(probe)!r} above it is a file"
        raise ValueError(f"--mi-cache-dir {str(path)!r}: {where}; expected a folder (new or existing) for the "
                         "generation and verdict caches")
    if probe == path:
        try:
            fd, tmp = tempfile.mkstemp(dir=path, prefix=".mechinterp-write-check-")
            os.close(fd)
            os.unlink(tmp)
        except OSError as err:
            raise ValueError(f"--mi-cache-dir {str(path)!r}: no file can be created there ({err.strerror or err}); "
                             "expected a writable folder for the generation and verdict caches") from None
    return path


def _int(opt: str, text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"--mi-{opt} {text!r}: expected an integer") from None
    if value < minimum:
        raise ValueError(f"--mi-{opt} {text!r}: must be >= {minimum}")
    return value


def resolve(config) -> Settings:
    """Read every suite option from ``config``; ``ValueError`` naming the option on bad values (the one place
    settings are checked, so a bad value is one usage error before anything runs). The device's presence
    is checked where the claims are scheduled, not in an xdist worker, which must not touch CUDA before
    it is given its GPU."""
    v = {o.name: raw_value(config, o) for o in OPTIONS}
    if v["judge"] not in JUDGES:
        raise ValueError(f"--mi-judge {v['judge']!r}: expected one of {', '.join(JUDGES)}")
    if v["generator"] not in ("device", "cpu"):
        raise ValueError(f"--mi-generator {v['generator']!r}: expected device or cpu")
    generations, dollars = parse_budget(v["budget"])
    return Settings(
        model=v["model"],
        judge=v["judge"],
        samples=None if v["samples"] is None else _int("samples", v["samples"], 1),
        budget_generations=generations,
        budget_dollars=dollars,
        seed=_int("seed", v["seed"], 0),
        cache_dir=check_cache_dir(Path(v["cache_dir"]).expanduser()),
        data_dir=Path(v["data_dir"]).expanduser() if v["data_dir"] else None,
        device=parse_device(v["device"], check_available=not hasattr(config, "workerinput")),
        dtype=v["dtype"],
        generator=v["generator"],
        report=Path(v["report"]).expanduser() if v["report"] else None,
        shard=parse_shard(v["shard"]),
        progress=parse_progress(v["progress"], sys.stderr.isatty()),
        judge_config=_judge_config(v["judge_config"]),
        strict=parse_switch("strict", v["strict"]),
        threads=None if v["threads"].strip().lower() == "auto" else _int("threads", v["threads"], 1),
        batch=None if v["batch"].strip().lower() == "auto" else _int("batch", v["batch"], 1),
    )


#: the automatic batch on the CPU: the tiny organisms' per-call overhead halves at 16 (bench/README)
CPU_BATCH = 16


def batch_size(settings: Settings, device_type: str) -> int:
    """Generations per batch within a look: the setting, else 16 on the CPU and 1 on a GPU (a real
    model's batch memory is unmeasured); always 1 under a generation budget, which is checked per
    generation."""
    if settings.budget_generations is not None:
        return 1
    if settings.batch is not None:
        return settings.batch
    return CPU_BATCH if device_type == "cpu" else 1


def _judge_config(text: str | None):
    """``--judge-config`` parsed (imported only when given: a session without it imports no judge SDK)."""
    if not text:
        return None
    from mechinterp.judges.config import JudgeConfig

    return JudgeConfig.parse(text)
