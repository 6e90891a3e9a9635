"""The paper's judge: Claude (Opus 4.7 by default) over the real ``anthropic`` SDK.

One bundle is one Messages call: the Appendix-E system prompt (cached), then for each image
its label and a base64 PNG, then the question; the one-line JSON reply becomes a
:class:`~mechinterp.judges.verdict.Verdict`. A reply that is no verdict at all (broken JSON, empty,
``pass`` not 0/1) is asked again up to ``reask`` times (counted in ``usage.reasked``) before it is
recorded as an abstention, so a transient glitch is never cached as the bundle's answer. ``batch=False`` judges with up to
``max_concurrency`` calls in flight; ``batch=True`` sends everything not cached as Message
Batches (half price, results within 24 h). Every reply paid for is counted in ``usage``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed

from mechinterp.judges.base import Bundle, Judge
from mechinterp.judges.batch import run_batches
from mechinterp.judges.cache import VerdictCache
from mechinterp.judges.client import DEFAULT_MODEL, AnthropicClient, ClientReply, JudgeAPIError
from mechinterp.judges.images import image_block
from mechinterp.judges.usage import Usage
from mechinterp.judges.verdict import Verdict, parse_reply

log = logging.getLogger(__name__)


def bundle_content(bundle: Bundle) -> list[dict]:
    """The user turn of a judge call: label, image, label, image, ..., question."""
    blocks: list[dict] = []
    for label, image in zip(bundle.question.labels, bundle.images):
        blocks.append({"type": "text", "text": label})
        blocks.append(image_block(image))
    blocks.append({"type": "text", "text": bundle.question.question})
    return blocks


class AnthropicJudge(Judge):
    """Claude as a yes/no visual judge (see module doc).

    ``api_key``/``base_url`` default to the SDK's ``ANTHROPIC_API_KEY``/``ANTHROPIC_BASE_URL``
    environment variables. ``backoff_base`` (seconds) scales the exponential back-off;
    ``batch_poll_interval`` is the wait between batch status checks.
    """

    name = "anthropic"

    def __init__(self, model: str = DEFAULT_MODEL, api_key: str | None = None,
                 base_url: str | None = None, max_concurrency: int = 8, batch: bool = False,
                 *, max_tokens: int = 200, cache: VerdictCache | None = None,
                 max_retries: int = 6, timeout: float = 120.0, backoff_base: float = 1.0,
                 backoff_cap: float = 60.0, batch_poll_interval: float = 30.0,
                 batch_max_rounds: int = 3, batch_timeout: float = 24 * 3600.0,
                 reask: int = 2, client: AnthropicClient | None = None) -> None:
        super().__init__(cache)
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency!r}")
        if not isinstance(reask, int) or reask < 0:
            raise ValueError(f"reask must be an integer >= 0 (extra asks after a malformed reply), got {reask!r}")
        self.reask = reask
        if batch_max_rounds < 1:
            raise ValueError(f"batch_max_rounds must be >= 1, got {batch_max_rounds!r}")
        self.client = client or AnthropicClient(
            model=model, api_key=api_key, base_url=base_url, max_retries=max_retries,
            timeout=timeout, backoff_base=backoff_base, backoff_cap=backoff_cap)
        self.model = self.client.model
        self.max_tokens = max_tokens
        self.max_concurrency = max_concurrency
        self.batch = batch
        self.batch_poll_interval = batch_poll_interval
        self.batch_max_rounds = batch_max_rounds
        self.batch_timeout = batch_timeout
        self.usage = Usage(self.model)

    def __repr__(self) -> str:
        return (f"AnthropicJudge(model={self.model!r}, base_url={self.client.base_url!r}, "
                f"batch={self.batch}, max_concurrency={self.max_concurrency}, "
                f"cache={self.cache!r})")

    def _from_reply(self, bundle: Bundle, reply: ClientReply, asked: int = 0) -> Verdict | None:
        """The verdict of one paid reply, or ``None`` when it is malformed and ``asked`` (asks so far
        after the first) leaves a re-ask."""
        parsed = parse_reply(reply.text)
        again = parsed.malformed and asked < self.reask
        self.usage.add(reply, batch=self.batch, abstained=parsed.passed is None and not again)
        if again:
            self.usage.add_reask()
            log.info("judge reply on %s is no verdict (%s); asking again (%d/%d)", bundle.question.id,
                     parsed.reason, asked + 1, self.reask)
            return None
        if parsed.passed is None:
            log.info("judge abstained on %s: %s", bundle.question.id, parsed.reason)
        return self.verdict(bundle.question, parsed.passed, parsed.reason,
                            reply.total_input_tokens, reply.output_tokens)

    def _judge_fresh(self, bundles: list[tuple[str, Bundle]],
                     deliver: Callable[[str, Verdict], None]) -> dict[str, str]:
        if self.batch:
            return self._judge_batch(bundles, deliver)
        failures: dict[str, str] = {}

        def one(bundle: Bundle) -> Verdict:
            for asked in range(self.reask + 1):
                reply = self.client.complete(bundle.question.system, bundle_content(bundle),
                                             self.max_tokens)
                verdict = self._from_reply(bundle, reply, asked)
                if verdict is not None:
                    return verdict
            raise AssertionError("unreachable: the last ask always gives a verdict")

        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(bundles))) as pool:
            futures = {pool.submit(one, b): key for key, b in bundles}
            for future in as_completed(futures):
                key = futures[future]
                try:
                    deliver(key, future.result())
                except JudgeAPIError as err:
                    failures[key] = str(err)
        return failures

    def _judge_batch(self, bundles: list[tuple[str, Bundle]],
                     deliver: Callable[[str, Verdict], None]) -> dict[str, str]:
        # custom_id: ^[a-zA-Z0-9_-]{1,64}$; the content hash is unique per bundle
        by_cid = {f"b{key[:40]}": (key, bundle) for key, bundle in bundles}
        requests = {cid: self.client.params(b.question.system, bundle_content(b), self.max_tokens)
                    for cid, (_, b) in by_cid.items()}

        asked: dict[str, int] = {}
        again: set[str] = set()

        def on_reply(cid: str, reply: ClientReply) -> None:
            key, bundle = by_cid[cid]
            verdict = self._from_reply(bundle, reply, asked.get(cid, 0))
            if verdict is None:
                again.add(cid)
            else:
                deliver(key, verdict)

        failed: dict[str, str] = {}
        while requests:  # malformed replies go into another batch, at most ``reask`` times each
            failed.update(run_batches(self.client, requests, on_reply, self.batch_poll_interval,
                                      self.batch_max_rounds, self.batch_timeout))
            requests = {cid: requests[cid] for cid in again}
            for cid in again:
                asked[cid] = asked.get(cid, 0) + 1
            again.clear()
        return {by_cid[cid][0]: why for cid, why in failed.items()}
