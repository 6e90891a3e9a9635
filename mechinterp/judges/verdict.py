"""Verdicts and the judge-reply parser.

The judge is asked for one line of JSON, ``{"pass": 0|1, "reason": "..."}``. The parser
accepts exactly that, and also digs the first such object out of stray text (a markdown
fence, a preamble); anything else - no object, a ``pass`` that is not 0/1, or the prompt's
own "cannot determine" escape - is an abstention (``passed=None``), never a guess.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

#: the reason the system prompt tells the judge to give when it cannot answer
CANNOT_DETERMINE = "cannot determine"
_PASS_VALUES = {0: False, 1: True, "0": False, "1": True}


@dataclass(frozen=True)
class Verdict:
    """One judge decision on one bundle.

    ``passed`` is the judge's raw answer (``None`` = abstained: unparseable reply or "cannot
    determine"); apply the question's polarity to get the claim's event. ``judge`` names the
    judge, its model and the question, as ``"<name>:<model>:<question id>"``. Tokens are the
    call that produced it; ``cached`` says it was read from the verdict cache this time.
    """

    passed: bool | None
    reason: str
    judge: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached: bool = False

    @property
    def abstained(self) -> bool:
        """True when the judge gave no usable yes/no."""
        return self.passed is None

    @property
    def question_id(self) -> str:
        """The question id part of ``judge``."""
        return self.judge.rsplit(":", 1)[-1]

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), without the per-read ``cached`` flag."""
        data = asdict(self)
        data.pop("cached")
        return json.dumps(data, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, cached: bool = False) -> Verdict:
        """Inverse of :meth:`to_json`; raises ``ValueError`` on anything malformed."""
        data = json.loads(text)
        if not isinstance(data, dict) or set(data) != {"passed", "reason", "judge",
                                                       "input_tokens", "output_tokens"}:
            raise ValueError(f"not a verdict record: {text[:200]!r}")
        if data["passed"] not in (True, False, None) or not isinstance(data["reason"], str) \
                or not isinstance(data["judge"], str) \
                or not all(isinstance(data[k], int) and data[k] >= 0
                           for k in ("input_tokens", "output_tokens")):
            raise ValueError(f"verdict record has fields of the wrong type: {text[:200]!r}")
        return cls(cached=cached, **data)


@dataclass(frozen=True)
class ParsedReply:
    """What a reply says: ``passed`` (None = abstain), ``reason``, and whether it was the
    strict one-line JSON the prompt asks for."""

    passed: bool | None
    reason: str
    strict: bool

    @property
    def malformed(self) -> bool:
        """True when the reply is no verdict at all (not JSON, empty, a ``pass`` that is not 0/1), as
        opposed to the prompt's own "cannot determine": such a reply is worth asking again."""
        return self.passed is None and _normal(self.reason) != CANNOT_DETERMINE


def _interpret(obj: object) -> tuple[bool | None, str] | None:
    """(passed, reason) if ``obj`` is a verdict object, else None."""
    if not isinstance(obj, dict) or "pass" not in obj:
        return None
    raw = obj["pass"]
    reason = obj.get("reason", "")
    reason = reason if isinstance(reason, str) else json.dumps(reason)
    if isinstance(raw, bool):
        passed: bool | None = raw
    elif isinstance(raw, (int, str)) and raw in _PASS_VALUES:
        passed = _PASS_VALUES[raw]
    else:
        return None, f"unparseable pass value {raw!r}: {reason}"[:300]
    if _normal(reason) == CANNOT_DETERMINE:
        return None, reason
    return passed, reason


def _normal(reason: str) -> str:
    return re.sub(r"[\s.!]+$", "", reason.strip().lower())


def parse_reply(text: str) -> ParsedReply:
    """Parse a judge reply (see module doc). Never raises."""
    if not isinstance(text, str):
        return ParsedReply(None, f"reply is not text: {type(text).__name__}", False)
    stripped = text.strip()
    try:
        found = _interpret(json.loads(stripped))
        if found is not None:
            return ParsedReply(*found, strict="\n" not in stripped)
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", stripped):
        try:
            obj, _ = decoder.raw_decode(stripped, match.start())
        except ValueError:
            continue
        found = _interpret(obj)
        if found is not None:
            return ParsedReply(*found, strict=False)
    return ParsedReply(None, f"unparseable reply: {stripped[:200]!r}", False)
