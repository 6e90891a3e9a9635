"""Fault: judge replies that are no verdict (broken JSON, empty, ``pass=2``) are asked again a
bounded number of times before an abstention is recorded, and the run counts them."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from mechinterp.judges import AnthropicJudge, VerdictCache
from mechinterp.report.meta import RunMeta

SECRET = "sk-ant-test-SECRET"
RED = [Image.new("RGB", (16, 16), (200, 30, 30))] * 3


def make_judge(server, **kw) -> AnthropicJudge:
    options = dict(api_key=SECRET, base_url=server.base_url, timeout=2.0, backoff_base=0.001,
                   batch_poll_interval=0.005)
    return AnthropicJudge(**{**options, **kw})


@pytest.mark.parametrize("fault", ["malformed", "empty", "badpass"])
def test_a_reply_that_is_no_verdict_is_asked_again_and_the_answer_cached(fake_anthropic, tmp_path, fault):
    fake_anthropic.faults.append(fault)
    cache = VerdictCache(tmp_path)
    judge = make_judge(fake_anthropic, cache=cache)
    verdict = judge.judge("lens.color", RED)
    assert verdict.passed is True and verdict.reason == "fake judge reply"
    assert len(fake_anthropic.message_requests()) == 2
    assert (judge.usage.calls, judge.usage.reasked, judge.usage.abstentions) == (2, 1, 0)
    assert cache.get(judge.bundle(0, "lens.color", RED).key).passed is True  # the real answer is what is kept


def test_re_asking_is_bounded_then_an_abstention_is_recorded(fake_anthropic):
    fake_anthropic.faults.extend(["empty"] * 5)
    judge = make_judge(fake_anthropic, reask=2)
    verdict = judge.judge("lens.color", RED)
    assert verdict.abstained and "unparseable reply" in verdict.reason
    assert len(fake_anthropic.message_requests()) == 3
    assert (judge.usage.calls, judge.usage.reasked, judge.usage.abstentions) == (3, 2, 1)


def test_cannot_determine_is_an_answer_not_re_asked(fake_anthropic):
    fake_anthropic.responder = lambda body: json.dumps({"pass": 0, "reason": "cannot determine"})
    judge = make_judge(fake_anthropic)
    assert judge.judge("lens.color", RED).abstained
    assert len(fake_anthropic.message_requests()) == 1 and judge.usage.reasked == 0


def test_batch_mode_re_asks_in_another_batch(fake_anthropic):
    seen: set[str] = set()

    def first_reply_empty(body: dict) -> str:  # each bundle's first reply is empty, the next one answers
        digest = body["messages"][0]["content"][-2]["source"]["data"]
        if digest not in seen:
            seen.add(digest)
            return ""
        return '{"pass": 1, "reason": "second ask"}'

    fake_anthropic.responder = first_reply_empty
    judge = make_judge(fake_anthropic, batch=True)
    items = [("lens.color", [*RED[:2], Image.new("RGB", (16, 16), (i * 40, 10, 10))]) for i in range(3)]
    verdicts = judge.judge_many(items)
    assert [v.reason for v in verdicts] == ["second ask"] * 3
    creates = [r for r in fake_anthropic.requests if r.path == "/v1/messages/batches"]
    assert [len(r.json["requests"]) for r in creates] == [3, 3]
    assert (judge.usage.calls, judge.usage.reasked, judge.usage.abstentions) == (6, 3, 0)


def test_the_run_counts_re_asked_replies():
    pooled = RunMeta.pool([RunMeta(model="m", judge="auto", judge_reasked=2, cache_rejected=1),
                           RunMeta(model="m", judge="auto", judge_reasked=3)])
    assert (pooled.judge_reasked, pooled.cache_rejected) == (5, 1)
    rows = dict(pooled.rows())
    assert rows["re-asked"].startswith("5 judge replies") and rows["damaged cache entries"].startswith("1 ")
