"""The paper's judge: Claude (Opus 4.7 by default) over the real ``anthropic`` SDK.

One bundle is one Messages call: the Appendix-E system prompt (cached), then for each image
its label and a base64 PNG, then the question; the one-line JSON reply becomes a
:class:`~mechinterp.judges.verdict.Verdict`. ``batch=False`` judges with up to
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
from mechinterp.judges.client import AnthropicClient, ClientReply, JudgeAPIError
from mechinterp.judges.config import JudgeConfig
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

    Its settings are one :class:`~mechinterp.judges.config.JudgeConfig` (what the suite's
    ``--judge-config`` builds). ``api_key``/``base_url`` default to the SDK's
    ``ANTHROPIC_API_KEY``/``ANTHROPIC_BASE_URL`` environment variables.
    """

    name = "anthropic"

    def __init__(self, config: JudgeConfig | None = None, *, api_key: str | None = None, batch: bool = False,
                 cache: VerdictCache | None = None, client: AnthropicClient | None = None, **settings) -> None:
        """``config`` (default :class:`JudgeConfig`) with any of its fields overridden by keyword
        (``AnthropicJudge(timeout=1)``); ``client`` replaces the SDK client built from it."""
        super().__init__(cache)
        config = (config or JudgeConfig()).replace(**settings)
        self.config = config
        self.client = client or AnthropicClient(
            model=config.model, api_key=api_key, base_url=config.base_url, max_retries=config.max_retries,
            timeout=config.timeout, backoff_base=config.backoff_base, backoff_cap=config.backoff_cap)
        self.model = self.client.model
        self.max_tokens = config.max_tokens
        self.max_concurrency = config.max_concurrency
        self.batch = batch
        self.batch_poll_interval = config.batch_poll_interval
        self.batch_max_rounds = config.batch_max_rounds
        self.batch_timeout = config.batch_timeout
        if batch:  # other workers must wait out a whole batch before taking a bundle over
            self.claim_ttl = max(self.claim_ttl, config.batch_timeout * config.batch_max_rounds)
        self.usage = Usage(self.model)

    def __repr__(self) -> str:
        return (f"AnthropicJudge(model={self.model!r}, base_url={self.client.base_url!r}, "
                f"batch={self.batch}, max_concurrency={self.max_concurrency}, "
                f"cache={self.cache!r})")

    def _from_reply(self, bundle: Bundle, reply: ClientReply) -> Verdict:
        parsed = parse_reply(reply.text)
        self.usage.add(reply, batch=self.batch, abstained=parsed.passed is None)
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
            reply = self.client.complete(bundle.question.system, bundle_content(bundle),
                                         self.max_tokens)
            return self._from_reply(bundle, reply)

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

        def on_reply(cid: str, reply: ClientReply) -> None:
            key, bundle = by_cid[cid]
            deliver(key, self._from_reply(bundle, reply))

        failed = run_batches(self.client, requests, on_reply, self.batch_poll_interval,
                             self.batch_max_rounds, self.batch_timeout)
        return {by_cid[cid][0]: why for cid, why in failed.items()}
