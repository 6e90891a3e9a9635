"""Judges: yes/no verdicts on bundles of labelled images (paper §4, Appendix E).

- :data:`QUESTIONS` - the paper's question bank (id -> :class:`Question`).
- :class:`AnthropicJudge` - Claude over the real ``anthropic`` SDK (sync or Message Batches).
- :class:`ColorJudge` - an objective CIELAB/ΔE2000 judge for the colour questions.
- :class:`GlyphJudge` - an objective judge for the identity questions on glyph bundles (identity organisms).
- :class:`VerdictCache` - the SQLite verdict cache shared by pytest-xdist workers.
- :func:`agreement` - Cohen's κ and the confusion table of two judges.

Names are imported lazily (PEP 562), so ``import mechinterp.judges.cache`` in a worker or a
subprocess does not pay for the ``anthropic`` SDK or scikit-image.
"""

from __future__ import annotations

import importlib

_HOME = {
    "agreement": ("Agreement", "agreement", "cohen_kappa"),
    "anthropic_judge": ("AnthropicJudge",),
    "base": ("Judge", "JudgeError"),
    "cache": ("VerdictCache",),
    "client": ("AnthropicClient", "ClientReply", "JudgeAPIError", "RetryPolicy"),
    "config": ("DEFAULT_MODEL", "JudgeConfig"),
    "color": ("ColorJudge",),
    "glyph": ("GlyphJudge",),
    "questions": ("QUESTIONS", "SYSTEM_PROMPT", "Question", "get_question"),
    "usage": ("BATCH_DISCOUNT", "PRICES_USD_PER_MTOK", "Usage"),
    "verdict": ("ParsedReply", "Verdict", "parse_reply"),
}
_MODULE_OF = {name: module for module, names in _HOME.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    """Import the public name on first use."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'mechinterp.judges' has no attribute {name!r}; "
                             f"public names: {__all__}")
    value = getattr(importlib.import_module(f"mechinterp.judges.{_MODULE_OF[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
