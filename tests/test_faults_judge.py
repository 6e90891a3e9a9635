"""Fault: judge replies that are no verdict (broken JSON, empty, ``pass=2``) are asked again a
bounded number of times before an abstention is recorded, and the run counts them."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from mechinterp.judges import AnthropicJudge, JudgeError, VerdictCache
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


# -- a 200 reply whose body is itself malformed (cut short, other JSON, no content) -----------------------------
def colour_reply(body: dict) -> str:
    """A verdict that names the bundle's last image, so a verdict delivered to the wrong bundle would show."""
    data = [b for b in body["messages"][0]["content"] if b["type"] == "image"][-1]["source"]["data"]
    return json.dumps({"pass": int(len(data) % 2), "reason": f"last image {data[-24:]}"})


def colour_items(n: int) -> list:
    return [("lens.color", [*RED[:2], Image.new("RGB", (16, 16), (i * 25, 40, 200 - i * 20))]) for i in range(n)]


def answers(verdicts) -> list:
    """What a verdict says, whether fresh or read from the cache."""
    return [(v.passed, v.reason, v.judge) for v in verdicts]


def clean_verdicts(items, **kw) -> list:
    from mechinterp.testing.fake_anthropic import FakeAnthropicServer

    with FakeAnthropicServer(responder=colour_reply) as clean:
        return make_judge(clean, **kw).judge_many(items)


@pytest.mark.parametrize("fault", ["truncated", "notmessage"])
def test_malformed_200_bodies_are_retried_and_the_verdicts_equal_a_clean_run(fake_anthropic, tmp_path, fault):
    """The SDK lets a cut-short body's JSONDecodeError through and fills a Message of other JSON with None:
    both are retried, counted as re-asked, and cost no answer twice."""
    fake_anthropic.responder = colour_reply
    fake_anthropic.faults.extend([fault] * 3)
    items = colour_items(8)
    judge = make_judge(fake_anthropic, cache=VerdictCache(tmp_path))
    verdicts = judge.judge_many(items)
    assert verdicts == clean_verdicts(items)
    assert len(fake_anthropic.message_requests()) == 11
    assert len(fake_anthropic.paid) == 8 and set(fake_anthropic.paid.values()) == {1}  # nothing paid twice
    assert (judge.usage.calls, judge.usage.reasked, judge.usage.abstentions) == (8, 3, 0)
    again = make_judge(fake_anthropic, cache=VerdictCache(tmp_path))
    assert answers(again.judge_many(items)) == answers(verdicts)
    assert again.usage.calls == 0 and len(fake_anthropic.message_requests()) == 11


def test_an_empty_content_list_is_retried_and_its_tokens_counted(fake_anthropic):
    fake_anthropic.faults.append("nocontent")
    judge = make_judge(fake_anthropic)
    verdict = judge.judge("lens.color", RED)
    assert (verdict.passed, verdict.reason) == (True, "fake judge reply")
    (key,) = fake_anthropic.paid
    assert fake_anthropic.paid[key] == 2  # the empty reply was billed, and is counted as a paid call
    assert (judge.usage.calls, judge.usage.reasked, judge.usage.abstentions) == (2, 1, 0)


def test_when_retries_run_out_one_error_names_the_request_and_the_rest_is_kept(fake_anthropic, tmp_path):
    fake_anthropic.responder = colour_reply
    fake_anthropic.faults.extend(["truncated"] * 2)
    items = colour_items(5)
    judge = make_judge(fake_anthropic, cache=VerdictCache(tmp_path), max_retries=1, max_concurrency=1)
    with pytest.raises(JudgeError) as info:
        judge.judge_many(items)
    key = judge.bundle(0, *items[0]).key
    assert list(info.value.failures) == [0]
    why = info.value.failures[0]
    assert why.startswith(f"messages.create(claude-opus-4-7, lens.color, bundle {key[:12]}): still failing after "
                          "2 attempts (last: malformed 200 reply (body is not JSON: ")
    assert len(VerdictCache(tmp_path)) == 4  # the four answered are stored
    rerun = make_judge(fake_anthropic, cache=VerdictCache(tmp_path))
    assert answers(rerun.judge_many(items)) == answers(clean_verdicts(items))
    assert rerun.usage.calls == 1  # the rerun pays only for the bundle that got no verdict
    assert len(fake_anthropic.paid) == 5 and set(fake_anthropic.paid.values()) == {1}


@pytest.mark.parametrize("n", [3, 4])  # half of 4 equal lines ends on a line: only the batch's counts show the cut
def test_batch_polls_and_results_cut_short_are_read_again(fake_anthropic, n):
    fake_anthropic.responder = colour_reply
    # create; two bad polls, a good one; the SDK's results(): a status look, then the JSONL, cut short
    fake_anthropic.faults.extend(["ok", "truncated", "notmessage", "ok", "ok", "truncated"])
    items = colour_items(n)
    judge = make_judge(fake_anthropic, batch=True)
    assert judge.judge_many(items) == clean_verdicts(items)
    assert [(r.method, r.path.endswith("/results")) for r in fake_anthropic.requests] == \
        [("POST", False)] + [("GET", False)] * 4 + [("GET", True), ("GET", False), ("GET", True)]
    assert len(fake_anthropic.paid) == n and set(fake_anthropic.paid.values()) == {1}
    assert judge.usage.calls == n


def test_batch_judge_failing_for_good_keeps_every_answer_it_got(fake_anthropic, tmp_path):
    fake_anthropic.responder = colour_reply
    fake_anthropic.batch_faults.extend(["succeeded"] * 3 + ["errored"])  # round 1: three answers, one to resubmit
    fake_anthropic.faults.extend(["ok"] * 4 + ["529"] * 3)  # create, poll, results (a look, the JSONL); round 2 fails
    items = colour_items(4)
    judge = make_judge(fake_anthropic, batch=True, cache=VerdictCache(tmp_path), max_retries=2)
    with pytest.raises(JudgeError) as info:
        judge.judge_many(items)
    (index,) = info.value.failures
    why = info.value.failures[index]
    assert "messages.batches.create(1 requests): still failing after 3 attempts (last: HTTP 529)" in why
    assert len(VerdictCache(tmp_path)) == 3
    rerun = make_judge(fake_anthropic, batch=True, cache=VerdictCache(tmp_path))
    assert answers(rerun.judge_many(items)) == answers(clean_verdicts(items))
    assert rerun.usage.calls == 1 and len(fake_anthropic.paid) == 4 and set(fake_anthropic.paid.values()) == {1}
