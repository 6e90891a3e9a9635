"""The paper's judge: Claude (Opus 4.7 by default) over the real ``anthropic`` SDK.

One bundle is one Messages call: the Appendix-E system prompt (cached), then for each image
its label and a base64 PNG, then the question; the one-line JSON reply becomes a
:class:`~mechinterp.judges.verdict.Verdict`. A reply that is no verdict at all (broken JSON, empty,
``pass`` not 0/1) is asked again up to ``reask`` times (counted in ``usage.reasked``) before it is
recorded as an abstention, so a transient glitch is never cached as the bundle's answer. A reply whose
200 body is itself malformed (cut short, not a Messages response, no content) is retried by the client
under the retry policy and counted in ``usage.reasked`` too. ``batch=False`` judges with up to
``max_concurrency`` calls in flight; ``batch=True`` sends everything not cached as Message
Batches (half price, results within 24 h). Every reply paid for is counted in ``usage``, and every
verdict is delivered (so cached) as it comes, whatever happens to the other bundles: a rerun after a
failure pays only for the bundles that got no verdict.
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
        self.reask = config.reask
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

    def _malformed(self, cause: str, reply: ClientReply | None) -> None:
        """Count one malformed 200 reply, about to be retried, as re-asked (and its tokens, where its
        body gave them: they were billed)."""
        if reply is not None:
            self.usage.add(reply, batch=self.batch)
        self.usage.add_reask()

    def _judge_fresh(self, bundles: list[tuple[str, Bundle]],
                     deliver: Callable[[str, Verdict], None]) -> dict[str, str]:
        if self.batch:
            return self._judge_batch(bundles, deliver)
        failures: dict[str, str] = {}

        def one(key: str, bundle: Bundle) -> None:
            label = f"{bundle.question.id}, bundle {key[:12]}"
            for asked in range(self.reask + 1):
                reply = self.client.complete(bundle.question.system, bundle_content(bundle),
                                             self.max_tokens, label=label, on_malformed=self._malformed)
                verdict = self._from_reply(bundle, reply, asked)
                if verdict is not None:
                    deliver(key, verdict)  # stored now, not after the other bundles: one failing loses none
                    return
            raise AssertionError("unreachable: the last ask always gives a verdict")

        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(bundles))) as pool:
            futures = {pool.submit(one, key, b): key for key, b in bundles}
            for future in as_completed(futures):
                try:
                    future.result()
                except JudgeAPIError as err:
                    failures[futures[future]] = str(err)
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
            try:
                failed.update(run_batches(self.client, requests, on_reply, self.batch_poll_interval,
                                          self.batch_max_rounds, self.batch_timeout,
                                          on_malformed=self._malformed))
            except JudgeAPIError as err:  # what was answered is delivered already; the rest fail with this
                failed.update({cid: str(err) for cid in requests})
                break
            requests = {cid: requests[cid] for cid in again}
            for cid in again:
                asked[cid] = asked.get(cid, 0) + 1
            again.clear()
        return {by_cid[cid][0]: why for cid, why in failed.items()}
