"""Message Batches: submit many judge requests at half price, collect results by ``custom_id``.

Nothing is dropped silently: every request ends as a reply or as a reported failure. Results
are matched by ``custom_id`` (the API promises no order); a duplicate result line is ignored;
``errored`` (server-side), ``expired``, ``canceled`` and missing results are resubmitted in a
new batch, up to ``max_rounds`` batches in all; an ``invalid_request_error`` is reported at
once, because resubmitting it cannot help. A ``succeeded`` line whose message is malformed (no
Messages response, no content) is resubmitted like an ``errored`` one, and told to
``on_malformed`` so the judge counts it as re-asked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from mechinterp.judges.client import (AnthropicClient, ClientReply, MalformedReply, OnMalformed, ended_count,
                                      reply_from_message)

log = logging.getLogger(__name__)


def _error_text(result: Any) -> tuple[str, bool]:
    """(description, retryable) of an ``errored`` batch result."""
    outer = getattr(result, "error", None)
    inner = getattr(outer, "error", outer)
    kind = getattr(inner, "type", "unknown_error")
    message = getattr(inner, "message", "")
    return f"errored: {kind}: {message}"[:300], kind != "invalid_request_error"


def run_batches(client: AnthropicClient, requests: dict[str, dict],
                on_reply: Callable[[str, ClientReply], None], poll_interval: float = 30.0,
                max_rounds: int = 3, timeout: float = 24 * 3600.0,
                sleep: Callable[[float], None] = time.sleep,
                on_malformed: OnMalformed | None = None) -> dict[str, str]:
    """Run ``{custom_id: params}`` through Message Batches, calling ``on_reply`` once per
    custom_id as results arrive. Returns ``{custom_id: why}`` for requests that never got a
    reply."""
    pending = dict(requests)
    failures: dict[str, str] = {}  # given up on: not retryable, or out of rounds
    retry: dict[str, str] = {}
    for round_no in range(1, max_rounds + 1):
        if not pending:
            break
        batch = client.create_batch([{"custom_id": cid, "params": p} for cid, p in pending.items()])
        log.info("batch %s: %d requests submitted (round %d/%d)", batch.id, len(pending),
                 round_no, max_rounds)
        deadline = time.monotonic() + timeout
        while batch.processing_status != "ended":
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch.id} still {batch.processing_status!r} after "
                                   f"{timeout:.0f}s")
            sleep(poll_interval)
            batch = client.retrieve_batch(batch.id)
        seen: set[str] = set()
        retry = {}
        for line in client.batch_results(batch.id, ended_count(batch)):
            cid, result = line.custom_id, line.result
            if cid not in pending or cid in seen:
                log.warning("batch %s: ignoring %s result for %r", batch.id,
                            "duplicate" if cid in seen else "unknown", cid)
                continue
            seen.add(cid)
            if result.type == "succeeded":
                try:
                    reply = reply_from_message(getattr(result, "message", None))
                except MalformedReply as err:
                    retry[cid] = f"malformed 200 reply ({err})"
                    if on_malformed is not None:
                        on_malformed(retry[cid], err.reply)
                    continue
                on_reply(cid, reply)
            elif result.type == "errored":
                why, retryable = _error_text(result)
                (retry if retryable else failures)[cid] = why
            else:  # expired, canceled
                retry[cid] = result.type
        retry.update({cid: "missing from the batch results" for cid in pending if cid not in seen})
        if retry:
            log.warning("batch %s: %d requests to resubmit: %s", batch.id, len(retry),
                        sorted(set(retry.values())))
        pending = {cid: pending[cid] for cid in retry}
    failures.update({cid: f"{retry[cid]} (still failing after {max_rounds} batch rounds)"
                     for cid in pending})
    return failures
