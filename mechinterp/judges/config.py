"""``JudgeConfig``: every setting of the Claude judge in one value the suite can build from its options.

``--judge-config "model=claude-opus-4-7,max_concurrency=4,timeout=60"`` (ini
``mechinterp_judge_config``, env ``MECHINTERP_JUDGE_CONFIG``) sets any of the fields below; the
rest keep their defaults. The API key is not a setting: it comes from ``ANTHROPIC_API_KEY`` only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

#: the judge model of the paper (Claude Opus 4.7); here, not in ``client``, so a config is read without the SDK
DEFAULT_MODEL = "claude-opus-4-7"
#: the settings that change a verdict or whether one comes (a run folder pools rows of one only):
#: the model answers, a shorter reply can be cut before its verdict, re-asks turn malformed replies into verdicts
VERDICT_SETTINGS = ("model", "max_tokens", "reask")


@dataclass(frozen=True)
class JudgeConfig:
    """The Claude judge's settings: model and endpoint, concurrency, reply length, retries, batches."""

    model: str = DEFAULT_MODEL
    base_url: str | None = None  # default: the SDK's (``ANTHROPIC_BASE_URL``)
    max_concurrency: int = 8
    max_tokens: int = 200
    max_retries: int = 6
    timeout: float = 120.0
    backoff_base: float = 1.0  # seconds; scales the exponential back-off
    backoff_cap: float = 60.0
    batch_poll_interval: float = 30.0  # seconds between batch status checks
    batch_max_rounds: int = 3
    batch_timeout: float = 24 * 3600.0
    reask: int = 2  # extra asks after a reply that is no verdict (broken JSON, empty, pass not 0/1)

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {self.max_concurrency!r}")
        if not isinstance(self.reask, int) or self.reask < 0:
            raise ValueError(f"reask must be an integer >= 0 (extra asks after a malformed reply), got {self.reask!r}")
        if self.batch_max_rounds < 1:
            raise ValueError(f"batch_max_rounds must be >= 1, got {self.batch_max_rounds!r}")
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model must be a non-empty model id such as {DEFAULT_MODEL!r}, got {self.model!r}")

    def verdict_settings(self) -> dict:
        """The :data:`VERDICT_SETTINGS` as plain JSON values: what a run folder records of the judge (its
        concurrency, retries, time-outs and endpoint change how fast verdicts come, not which)."""
        return {name: getattr(self, name) for name in VERDICT_SETTINGS}

    def replace(self, **changes) -> "JudgeConfig":
        """A copy with some fields changed (``ValueError`` naming an unknown one)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"unknown judge settings {sorted(unknown)}; valid: {', '.join(f.name for f in fields(self))}")
        return replace(self, **changes)

    @classmethod
    def parse(cls, text: str | None) -> "JudgeConfig":
        """``"key=value,key=value"`` (the ``--judge-config`` option) → a config; ``None``/empty → the defaults."""
        if not text or not text.strip():
            return cls()
        types = {f.name: f.type for f in fields(cls)}
        changes: dict = {}
        for item in text.split(","):
            key, sep, value = (part.strip() for part in item.partition("="))
            if not sep or key not in types:
                raise ValueError(f"--mi-judge-config {text!r}: {item.strip()!r} is not key=value with a key among "
                                 f"{', '.join(types)}")
            kind = types[key].replace(" | None", "")
            try:
                changes[key] = int(value) if kind == "int" else float(value) if kind == "float" else value
            except ValueError:
                raise ValueError(f"--mi-judge-config {text!r}: {key} must be {'an integer' if kind == 'int' else 'a number'}, "
                                 f"got {value!r}") from None
        return cls(**changes)
