"""What every judge shares: bundle validation, the cache protocol, order-preserving results.

A judge subclass supplies ``supports(question)``, ``model`` and ``_judge_fresh(bundles,
deliver)``; this base class turns ``judge_many`` into: validate every bundle, answer what the
cache already holds, claim the rest so no other worker judges them too, judge the claimed
ones, store each verdict as soon as it exists, then wait for bundles other workers are
judging. Verdicts come back in input order; identical bundles in one call are judged once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image

from mechinterp.judges.cache import VerdictCache, bundle_key
from mechinterp.io import as_rgb, image_digest
from mechinterp.judges.questions import QUESTIONS, Question, get_question
from mechinterp.judges.verdict import Verdict

log = logging.getLogger(__name__)

Item = tuple[str, Sequence[Image.Image]]


class JudgeError(RuntimeError):
    """Some bundles got no verdict; ``failures`` maps input index -> why. Verdicts that were
    obtained are cached, so a rerun only pays for the failures."""

    def __init__(self, message: str, failures: dict[int, str]) -> None:
        super().__init__(message)
        self.failures = failures


@dataclass(frozen=True)
class Bundle:
    """A validated judge input: the question, its images in role order, the cache key."""

    question: Question
    images: tuple[Image.Image, ...]
    key: str


class Judge:
    """Base class of judges: ``judge`` / ``judge_many`` with caching (see module doc)."""

    name = "judge"
    model = "unknown"
    #: seconds a claim stays ours without a heartbeat before other workers may take the bundle over
    #: (renewed every ``claim_ttl / 3`` s while we judge; a dead owner on this host is taken over at once)
    claim_ttl = 300.0
    #: seconds between looks at the cache while another worker judges a bundle
    wait_poll = 0.05
    #: store each verdict in its own transaction as it is delivered (a network judge: a kill loses nothing
    #: already paid for); False stores the whole batch in one :meth:`VerdictCache.put_many` when it is done
    store_each = True

    def __init__(self, cache: VerdictCache | None = None) -> None:
        self.cache = cache

    def supports(self, question: Question) -> bool:
        """Whether this judge can answer ``question``."""
        return True

    def judge(self, question_id: str, images: Sequence[Image.Image]) -> Verdict:
        """Judge one bundle: ``images`` are PIL images in the question's role order."""
        return self.judge_many([(question_id, images)])[0]

    def judge_many(self, items: Sequence[Item]) -> list[Verdict]:
        """Judge many bundles; the verdicts come back in the same order."""
        bundles = [self.bundle(i, qid, imgs) for i, (qid, imgs) in enumerate(items)]
        by_key: dict[str, list[int]] = {}
        for i, b in enumerate(bundles):
            by_key.setdefault(b.key, []).append(i)
        results: dict[str, Verdict] = {}
        failures: dict[str, str] = {}
        # Each round: a cached verdict settles a key; a key we can claim is judged now (by us
        # alone across workers); the rest are being judged elsewhere, so look again after a
        # pause (none after the first round, whose judging already took time) until their
        # verdict lands or their owner gives up or its claim lapses and we take it over.
        pending = list(by_key)
        rounds = 0
        while pending:
            if self.cache is None:
                mine, still = pending, []
            else:  # one look-up and one claiming transaction per round, not one of each per bundle
                hits = self.cache.get_many(pending)
                results.update((k, v) for k, v in hits.items() if v is not None)
                claims = self.cache.claim_many([k for k in pending if hits[k] is None], self.claim_ttl)
                mine = [k for k, status in claims.items() if status == "claimed"]
                still = [k for k, status in claims.items() if status != "claimed"]
            self._run(mine, bundles, by_key, results, failures)
            pending = still
            rounds += 1
            if pending and rounds > 1:
                time.sleep(self.wait_poll)
        if failures:
            by_index = {i: why for k, why in failures.items() for i in by_key[k]}
            raise JudgeError(f"{self.name}: {len(by_index)} of {len(bundles)} bundles got no "
                             f"verdict: {dict(list(by_index.items())[:5])}", by_index)
        return [results[b.key] for b in bundles]

    def bundle(self, index: int, question_id: str, images: Sequence[Image.Image]) -> Bundle:
        """Validate one ``(question_id, images)`` item and compute its cache key."""
        question = get_question(question_id)
        if not self.supports(question):
            valid = sorted(q for q, v in QUESTIONS.items() if self.supports(v))
            raise ValueError(f"{self.name} cannot answer question {question_id!r} (item "
                             f"{index}); it answers {valid}")
        if isinstance(images, Image.Image) or len(images) != len(question.roles):
            got = 1 if isinstance(images, Image.Image) else len(images)
            raise ValueError(f"question {question_id!r} (item {index}) takes "
                             f"{len(question.roles)} images in the order {question.roles}, "
                             f"got {got}")
        for role, image in zip(question.roles, images):
            if not isinstance(image, Image.Image):
                raise TypeError(f"question {question_id!r} (item {index}): image "
                                f"{role!r} must be a PIL.Image.Image, got {type(image).__name__}")
        # keyed by the images as every judge sees them (alpha composited on white), so two that differ
        # only in alpha get their own verdicts, and an image and its composite share one
        key = bundle_key(self.model, question.system, question.question, question.labels,
                         [image_digest(as_rgb(im)) for im in images])
        return Bundle(question, tuple(images), key)

    def verdict(self, question: Question, passed: bool | None, reason: str,
                input_tokens: int = 0, output_tokens: int = 0) -> Verdict:
        """A fresh verdict of this judge on ``question``."""
        return Verdict(passed, reason, f"{self.name}:{self.model}:{question.id}",
                       input_tokens, output_tokens, cached=False)

    def _run(self, keys: list[str], bundles: list[Bundle], by_key: dict[str, list[int]],
             results: dict[str, Verdict], failures: dict[str, str]) -> None:
        if not keys:
            return
        todo = {k: bundles[by_key[k][0]] for k in keys}
        lock = threading.Lock()
        unsaved: dict[str, Verdict] = {}  # verdicts kept for one put_many at the end (store_each=False)

        def deliver(key: str, verdict: Verdict) -> None:
            with lock:
                if key in results or key not in todo:
                    return  # a duplicate or stray answer: first one wins, never counted twice
                results[key] = verdict
                if self.cache is not None and not self.store_each:
                    unsaved[key] = verdict
                    return
            if self.cache is not None:
                self.cache.put(key, verdict)

        stop = threading.Event()
        if self.cache is not None:
            def beat() -> None:  # keep our claims alive while the judge works (a batch may take hours)
                while not stop.wait(self.claim_ttl / 3):
                    try:
                        self.cache.heartbeat([k for k in keys if k not in results or k in unsaved],
                                             self.claim_ttl)
                    except Exception as err:  # noqa: BLE001 - a missed beat only risks a duplicate call
                        log.warning("verdict cache heartbeat failed: %s", err)

            threading.Thread(target=beat, name="verdict-claims-heartbeat", daemon=True).start()
        try:
            failed = self._judge_fresh(list(todo.items()), deliver)
        finally:
            stop.set()
            if self.cache is not None:
                try:
                    with lock:
                        batch = list(unsaved.items())
                    self.cache.put_many(batch)  # also when _judge_fresh raised: keep what was decided
                    unsaved.clear()
                finally:
                    for key in keys:
                        if key not in results:
                            self.cache.release(key)
        for key in keys:
            if key not in results:
                failures[key] = failed.get(key, "no verdict returned")

    def _judge_fresh(self, bundles: list[tuple[str, Bundle]],
                     deliver: Callable[[str, Verdict], None]) -> dict[str, str]:
        """Judge every ``(key, bundle)``, calling ``deliver(key, verdict)`` for each verdict;
        return ``{key: why}`` for those that got none."""
        raise NotImplementedError


class PixelJudge(Judge):
    """A judge that answers one property's questions from the images alone (the colour and glyph
    judges): ``family`` names the questions it takes, :meth:`decide` answers one bundle."""

    family = ""
    #: a pixel judge decides a batch in milliseconds: one transaction for it all, not one per verdict
    store_each = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cache={self.cache!r})"

    def supports(self, question: Question) -> bool:
        """Only the questions of its property (``family``)."""
        return question.family == self.family

    def decide(self, question: Question, images: tuple[Image.Image, ...]) -> tuple[bool | None, str]:
        """``(passed, reason)`` for one bundle (``None``: abstain)."""
        raise NotImplementedError

    def _judge_fresh(self, bundles: list[tuple[str, Bundle]],
                     deliver: Callable[[str, Verdict], None]) -> dict[str, str]:
        for key, bundle in bundles:
            passed, reason = self.decide(bundle.question, bundle.images)
            deliver(key, self.verdict(bundle.question, passed, reason))
        return {}
