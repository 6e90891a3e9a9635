"""A thin, retrying Anthropic Messages client shared by the judge and by task authoring.

Why our own retry loop instead of the SDK's: one policy (which statuses, how long to wait,
how many tries) that is configurable per run, logged without secrets, identical for the
synchronous Messages calls and the Message Batches calls, and testable against the fake
server with millisecond back-off. The SDK's own retries are therefore switched off
(``max_retries=0``).

The API key is taken from the ``api_key`` argument or, as the SDK does, from the
``ANTHROPIC_API_KEY`` environment variable; ``ANTHROPIC_BASE_URL`` works the same way. The
key is handed to the SDK and never stored on this object, logged, or shown in a repr.

A reply with status 200 whose body is not the response asked for is retried like a transient
failure, under the same policy: a body cut short (the SDK's ``APIResponse.parse`` hands the
bytes to ``json.loads`` and lets ``JSONDecodeError`` through, outside its own exceptions), JSON of
another shape (the SDK validates loosely: ``construct_type`` fills a ``Message`` with ``None``),
or a Messages response with no content. ``APIResponseValidationError`` comes only with the SDK's
strict validation, which would also reject replies that merely carry newer fields, so the shape
is checked here instead (:func:`reply_from_message`, :func:`checked_batch`).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import anthropic

from mechinterp.judges.config import DEFAULT_MODEL

log = logging.getLogger(__name__)


#: HTTP statuses worth another try: request timeout, conflict, rate limit, server errors
#: (500-599, which includes Anthropic's 529 "overloaded").
RETRYABLE_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))

T = TypeVar("T")


class JudgeAPIError(RuntimeError):
    """An API call failed for good: a non-retryable status, or retries exhausted."""


class MalformedReply(Exception):
    """A 200 reply that is not the response asked for (see module doc); retried. ``reply`` is its
    text and usage where the body gave them (an empty content list is still billed)."""

    def __init__(self, reason: str, reply: ClientReply | None = None) -> None:
        super().__init__(reason)
        self.reply = reply


#: ``on_malformed(cause, reply)``: told of each malformed 200 reply before it is retried
OnMalformed = Callable[[str, "ClientReply | None"], None]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a failed call.

    Delay before retry ``n`` (0-based) is ``retry-after`` when the server sent one (capped at
    ``cap``), else ``min(cap, base * 2**n)`` scaled by a random factor in ``[1-jitter, 1]`` so
    that parallel workers do not retry in lock step.
    """

    max_retries: int = 6
    base: float = 1.0
    cap: float = 60.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base < 0 or self.cap < 0 or not 0 <= self.jitter <= 1:
            raise ValueError(
                f"bad RetryPolicy {self!r}: expected max_retries, base, cap >= 0 "
                "and 0 <= jitter <= 1"
            )

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to sleep before retry number ``attempt`` (0-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap)
        exp = min(self.cap, self.base * (2.0 ** min(attempt, 30)))
        return exp * (1.0 - self.jitter * random.random())


@dataclass(frozen=True)
class ClientReply:
    """The text of one model reply and its token usage.

    ``input_tokens`` is the uncached input; prompt-cache writes and reads are reported
    apart, as the API reports them, because they are priced differently.
    """

    text: str
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    stop_reason: str | None = None

    @property
    def total_input_tokens(self) -> int:
        """Every input token of the call, cached or not."""
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens


def retry_after_seconds(headers: Any) -> float | None:
    """Parse ``retry-after-ms`` / ``retry-after`` (seconds) from response headers, if present."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return max(0.0, float(raw) * scale)
        except (TypeError, ValueError):
            continue
    return None


def call_with_retries(fn: Callable[[], T], policy: RetryPolicy, what: str,
                      sleep: Callable[[float], None] = time.sleep,
                      on_malformed: OnMalformed | None = None) -> T:
    """Run ``fn`` and retry it under ``policy`` on retryable statuses, time-outs, connection
    errors and malformed 200 replies (each also told to ``on_malformed``, so a caller can count
    it); raise :class:`JudgeAPIError` naming ``what`` and the last cause when it fails for good."""
    for attempt in range(policy.max_retries + 1):
        try:
            return fn()
        except (json.JSONDecodeError, UnicodeDecodeError, MalformedReply) as err:
            reply = err.reply if isinstance(err, MalformedReply) else None
            detail = str(err) if isinstance(err, MalformedReply) else f"body is not JSON: {err}"
            retry_after, cause = None, f"malformed 200 reply ({detail[:200]})"
            if on_malformed is not None:
                on_malformed(cause, reply)
        except anthropic.APIStatusError as err:
            status = err.status_code
            if status not in RETRYABLE_STATUSES:
                raise JudgeAPIError(
                    f"{what}: HTTP {status} is not retryable "
                    f"(retryable: 408, 409, 429, 5xx): {_error_message(err)}"
                ) from err
            retry_after = retry_after_seconds(getattr(err.response, "headers", None))
            cause = f"HTTP {status}"
        except anthropic.APITimeoutError:
            retry_after, cause = None, "time-out"
        except anthropic.APIConnectionError:
            retry_after, cause = None, "connection error"
        except anthropic.AnthropicError as err:  # e.g. a response that does not validate
            raise JudgeAPIError(f"{what}: {type(err).__name__}: {str(err)[:300]}") from err
        if attempt == policy.max_retries:
            break
        wait = policy.delay(attempt, retry_after)
        log.warning("%s: %s, retry %d/%d in %.2fs", what, cause, attempt + 1,
                    policy.max_retries, wait)
        sleep(wait)
    raise JudgeAPIError(f"{what}: still failing after {policy.max_retries + 1} attempts "
                        f"(last: {cause})")


def _error_message(err: anthropic.APIStatusError) -> str:
    body = err.body if isinstance(err.body, dict) else {}
    inner = body.get("error") if isinstance(body.get("error"), dict) else {}
    return str(inner.get("message") or err.message)[:300]


def _shape(obj: Any) -> str:
    return f"{type(obj).__name__} {str(obj)[:120]!r}"


def reply_from_message(message: Any) -> ClientReply:
    """Turn an SDK ``Message`` into a :class:`ClientReply` (text blocks joined); raise
    :class:`MalformedReply` when it is no Messages response with token usage and some content,
    so a reply that cannot be a verdict is retried rather than read as an empty answer."""
    content = getattr(message, "content", None)
    if getattr(message, "type", None) != "message" or not isinstance(content, list):
        raise MalformedReply(f"not a Messages response: {_shape(message)}")
    usage = getattr(message, "usage", None)
    if not all(isinstance(getattr(usage, k, None), int) for k in ("input_tokens", "output_tokens")):
        raise MalformedReply(f"a Messages response without token usage: {_shape(usage)}")
    reply = ClientReply(
        text="".join(getattr(b, "text", "") or "" for b in content if getattr(b, "type", None) == "text"),
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_creation_input_tokens=int(getattr(usage, "cache_creation_input_tokens", 0) or 0),
        cache_read_input_tokens=int(getattr(usage, "cache_read_input_tokens", 0) or 0),
        stop_reason=getattr(message, "stop_reason", None),
    )
    if not content:
        raise MalformedReply("a Messages response with an empty content list", reply)
    return reply


#: a Message Batch's ``processing_status`` values
BATCH_STATUSES = ("in_progress", "canceling", "ended")


def checked_batch(batch: Any) -> Any:
    """``batch`` if it is a Message Batch (an id and a known status), else :class:`MalformedReply`:
    a status of ``None`` would otherwise be polled until the batch time-out."""
    status = getattr(batch, "processing_status", None)
    if not isinstance(getattr(batch, "id", None), str) or status not in BATCH_STATUSES:
        raise MalformedReply(f"not a Message Batch: {_shape(batch)}")
    return batch


def ended_count(batch: Any) -> int | None:
    """How many results an ended batch reports (its ``request_counts``), or None when it says not."""
    counts = getattr(batch, "request_counts", None)
    values = [getattr(counts, k, None) for k in ("succeeded", "errored", "canceled", "expired")]
    return sum(values) if all(isinstance(v, int) for v in values) else None


def checked_results(lines: list[Any], expected: int | None = None) -> list[Any]:
    """``lines`` if each is a batch result line (a ``custom_id`` and a result type) and there are
    at least ``expected`` of them, else :class:`MalformedReply`: a body cut at a line boundary
    parses cleanly, and its lost lines would otherwise be resubmitted and paid for again."""
    for line in lines:
        if not isinstance(getattr(line, "custom_id", None), str) or \
                not isinstance(getattr(getattr(line, "result", None), "type", None), str):
            raise MalformedReply(f"not a batch result line: {_shape(line)}")
    if expected is not None and len(lines) < expected:
        raise MalformedReply(f"{len(lines)} result lines where the batch reports {expected} results")
    return lines


#: what to do when :func:`has_api_key` is false
NO_KEY = "no Anthropic API key: set the ANTHROPIC_API_KEY environment variable (or pass api_key=...)"


def has_api_key(api_key: str | None = None) -> bool:
    """The one key check: whether a call can authenticate (``api_key``, else ``ANTHROPIC_API_KEY``).

    ``ANTHROPIC_AUTH_TOKEN`` alone does not count: the client sends an API key, so a token-only
    environment would fail on its first call; callers skip or stop early instead."""
    return bool(api_key or os.environ.get("ANTHROPIC_API_KEY"))


class AnthropicClient:
    """A Messages-API client with the project's retry policy and a cached system prompt.

    ``complete`` is the one call most code needs; ``create_batch``, ``retrieve_batch`` and
    ``batch_results`` expose the Message Batches endpoints under the same retry policy.
    """

    def __init__(self, model: str = DEFAULT_MODEL, api_key: str | None = None,
                 base_url: str | None = None, max_retries: int = 6, timeout: float = 120.0,
                 backoff_base: float = 1.0, backoff_cap: float = 60.0) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty model id such as {DEFAULT_MODEL!r}, "
                             f"got {model!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.model = model
        self.base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        self.timeout = float(timeout)
        self.policy = RetryPolicy(max_retries=max_retries, base=backoff_base, cap=backoff_cap)
        self._api_key = api_key
        self._sdk: anthropic.Anthropic | None = None

    def __repr__(self) -> str:
        return (f"AnthropicClient(model={self.model!r}, base_url={self.base_url!r}, "
                f"timeout={self.timeout}, policy={self.policy!r})")

    @property
    def sdk(self) -> anthropic.Anthropic:
        """The underlying SDK client, created on first use (so no key is needed until a
        call is actually made, e.g. when every verdict comes from the cache)."""
        if self._sdk is None:
            if not has_api_key(self._api_key):
                raise JudgeAPIError(NO_KEY)
            self._sdk = anthropic.Anthropic(api_key=self._api_key, base_url=self.base_url,
                                            max_retries=0, timeout=self.timeout)
            self._api_key = None  # the SDK holds it now; keep no second copy
        return self._sdk

    def params(self, system: str, content: list[dict] | str, max_tokens: int) -> dict:
        """The Messages request body: the system prompt as one cached text block and one
        user turn. Shared by synchronous calls and batch requests."""
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens!r}")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        return {
            "model": self.model,
            "max_tokens": int(max_tokens),
            "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": content}],
        }

    def complete(self, system: str, content: list[dict] | str, max_tokens: int, label: str = "",
                 on_malformed: OnMalformed | None = None) -> ClientReply:
        """One Messages call with retries; returns the reply text and its token usage. ``label``
        names the request in errors; ``on_malformed`` is told of each malformed reply retried."""
        params = self.params(system, content, max_tokens)
        return call_with_retries(lambda: reply_from_message(self.sdk.messages.create(**params)), self.policy,
                                 f"messages.create({self.model}{', ' + label if label else ''})",
                                 on_malformed=on_malformed)

    def create_batch(self, requests: list[dict]) -> Any:
        """Submit ``[{"custom_id": ..., "params": ...}, ...]`` as one Message Batch.

        A malformed reply to the submission is retried too: the batch it may have created is
        billed but never read (its id was in the lost body), the one price of not losing the run."""
        return call_with_retries(lambda: checked_batch(self.sdk.messages.batches.create(requests=requests)),
                                 self.policy, f"messages.batches.create({len(requests)} requests)")

    def retrieve_batch(self, batch_id: str) -> Any:
        """The batch's current status object."""
        return call_with_retries(lambda: checked_batch(self.sdk.messages.batches.retrieve(batch_id)),
                                 self.policy, f"messages.batches.retrieve({batch_id})")

    def batch_results(self, batch_id: str, expected: int | None = None) -> list[Any]:
        """Every result line of an ended batch (read fully inside the retry; read again when fewer
        than ``expected`` lines came, the count the ended batch reports: :func:`ended_count`)."""
        return call_with_retries(
            lambda: checked_results(list(self.sdk.messages.batches.results(batch_id)), expected),
            self.policy, f"messages.batches.results({batch_id})")
