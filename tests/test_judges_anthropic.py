"""AnthropicJudge and AnthropicClient through the real SDK against the fake server on loopback."""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from pathlib import Path

import pytest
from PIL import Image

from mechinterp.judges import (QUESTIONS, SYSTEM_PROMPT, AnthropicClient, AnthropicJudge,
                               JudgeAPIError, JudgeError, VerdictCache)
from mechinterp.judges.images import MAX_EDGE_PX, MAX_PIXELS
from mechinterp.judges.usage import BATCH_DISCOUNT, PRICES_USD_PER_MTOK

SECRET = "sk-ant-test-SECRET"


def solid(rgb, size=(16, 16)) -> Image.Image:
    return Image.new("RGB", size, rgb)


def decode(block: dict) -> Image.Image:
    assert block["type"] == "image" and block["source"]["media_type"] == "image/png"
    return Image.open(io.BytesIO(base64.b64decode(block["source"]["data"])))


def echo_last_image(body: dict) -> str:
    """Reply pass=1 iff the bundle's last image is reddish; the reason names its colour, so a
    verdict delivered to the wrong bundle is caught."""
    content = body["messages"][0]["content"]
    last = [c for c in content if c["type"] == "image"][-1]
    r, g, b = decode(last).convert("RGB").getpixel((0, 0))
    return json.dumps({"pass": int(r > 127), "reason": f"rgb={r},{g},{b}"})


def bundles(n: int, qid: str = "lens.color"):
    """n distinct bundles; bundle i's last image is (i*20 % 256, 10, 10)."""
    roles = len(QUESTIONS[qid].roles)
    return [(qid, [solid((200, 30, 30))] * (roles - 1) + [solid((i * 20 % 256, 10, 10))])
            for i in range(n)]


def check(verdicts, items):
    assert len(verdicts) == len(items)
    for verdict, (qid, images) in zip(verdicts, items):
        r, g, b = images[-1].getpixel((0, 0))
        assert verdict.question_id == qid
        if not verdict.abstained:
            assert verdict.reason == f"rgb={r},{g},{b}" and verdict.passed == (r > 127)


@pytest.fixture
def server(fake_anthropic):
    fake_anthropic.responder = echo_last_image
    fake_anthropic.hang_seconds = 10
    return fake_anthropic


def make_judge(server, **kw) -> AnthropicJudge:
    options = dict(api_key=SECRET, base_url=server.base_url, timeout=0.5, backoff_base=0.001,
                   batch_poll_interval=0.005)
    return AnthropicJudge(**{**options, **kw})


def test_request_carries_cached_system_labelled_images_in_order_and_key_only_in_header(server):
    images = [solid((255, 0, 0)), solid((0, 255, 0)), solid((0, 0, 255))]
    verdict = make_judge(server).judge("lens.color", images)
    assert verdict.passed is False and not verdict.cached  # last image is blue
    (request,) = server.message_requests()
    body = request.json
    assert body["model"] == "claude-opus-4-7" and body["max_tokens"] == 200
    assert body["system"] == [{"type": "text", "text": SYSTEM_PROMPT,
                               "cache_control": {"type": "ephemeral"}}]
    content = body["messages"][0]["content"]
    question = QUESTIONS["lens.color"]
    assert [c["text"] for c in content[0:6:2]] == list(question.labels)
    assert [decode(c).getpixel((0, 0)) for c in content[1:6:2]] == [(255, 0, 0), (0, 255, 0),
                                                                   (0, 0, 255)]
    assert content[6] == {"type": "text", "text": question.question} and len(content) == 7
    auth = [k for k, v in request.headers.items() if SECRET in v]
    assert auth and set(auth) <= {"x-api-key", "authorization"}
    assert SECRET.encode() not in request.raw and SECRET not in request.path


def test_large_images_are_downscaled_within_the_api_limits(server):
    make_judge(server).judge("lens.color", [solid((1, 2, 3), (3000, 2000))] * 3)
    for block in server.message_requests()[0].json["messages"][0]["content"][1::2]:
        w, h = decode(block).size
        assert max(w, h) <= MAX_EDGE_PX and w * h <= MAX_PIXELS and abs(w / h - 1.5) < 0.01


@pytest.mark.parametrize("fault", ["429", "500", "529", "408", "409", "hang"])
def test_transient_faults_are_retried_without_loss_or_double_count(server, fault):
    server.faults.append(fault)
    judge = make_judge(server, reask=0)  # no re-ask: what one reply gives (re-asking: test_faults_judge.py)
    verdict = judge.judge("lens.color", [solid((200, 30, 30))] * 3)
    assert verdict.passed is True and verdict.reason == "rgb=200,30,30"
    assert len(server.message_requests()) == 2
    assert judge.usage.calls == 1 and judge.usage.abstentions == 0


def test_retry_after_is_honoured(server):
    server.retry_after = "0.4"
    server.faults.append("429")
    start = time.monotonic()
    make_judge(server, backoff_base=0.0).judge("lens.color", [solid((9, 9, 9))] * 3)
    assert time.monotonic() - start >= 0.4


@pytest.mark.parametrize("fault,passed", [("malformed", None), ("markdown", True),
                                          ("prose", True)])
def test_reply_format_faults(server, fault, passed):
    server.faults.append(fault)
    judge = make_judge(server, reask=0)  # no re-ask: what one reply gives (re-asking: test_faults_judge.py)
    verdict = judge.judge("lens.color", [solid((200, 30, 30))] * 3)
    assert verdict.passed is passed and len(server.message_requests()) == 1
    assert judge.usage.calls == 1 and judge.usage.abstentions == (passed is None)


def test_all_faults_at_once_under_concurrency(server):
    server.faults.extend(["429", "500", "529", "hang", "malformed", "markdown", "prose"])
    items = bundles(10)
    judge = make_judge(server, max_concurrency=4)
    verdicts = judge.judge_many(items)
    check(verdicts, items)
    assert sum(v.abstained for v in verdicts) == 0 == judge.usage.abstentions  # the malformed one was re-asked
    assert judge.usage.calls == 11 and judge.usage.reasked == 1 and len(server.message_requests()) == 10 + 4 + 1


def test_concurrency_is_bounded(server):
    server.delay = 0.15
    make_judge(server, max_concurrency=2).judge_many(bundles(6))
    assert server.max_in_flight == 2


def test_non_retryable_and_exhausted_failures_are_reported_and_the_rest_kept(server, tmp_path):
    cache = VerdictCache(tmp_path)
    server.faults.extend(["400"])
    judge = make_judge(server, max_concurrency=1, cache=cache)
    items = bundles(3)
    with pytest.raises(JudgeError) as info:
        judge.judge_many(items)
    assert list(info.value.failures) == [0] and "HTTP 400 is not retryable" in str(info.value)
    assert len(cache) == 2
    server.faults.extend(["500"] * 3)
    with pytest.raises(JudgeError, match="still failing after 3 attempts"):
        make_judge(server, cache=cache, max_retries=2).judge_many(items)
    again = make_judge(server, cache=cache).judge_many(items)
    check(again, items)
    assert [v.cached for v in again] == [False, True, True]


def test_batch_mode_matches_by_custom_id_and_survives_item_faults(server):
    server.batch_faults.extend(["errored", "expired", "canceled", "missing", "duplicate"])
    server.faults.extend(["429", "529"])  # on the batch endpoints themselves
    items = bundles(7)
    judge = make_judge(server, batch=True)
    verdicts = judge.judge_many(items)
    check(verdicts, items)
    creates = [r for r in server.requests if r.path == "/v1/messages/batches"]
    assert len(creates) == 2 + 2  # 429, 529, the batch, one resubmission of the 4 failed
    assert len(creates[-1].json["requests"]) == 4
    assert judge.usage.calls == 7 and server.message_requests() == []
    sync = make_judge(server)
    sync.judge_many(items)
    assert judge.usage.cost_usd == pytest.approx(sync.usage.cost_usd * BATCH_DISCOUNT)


def test_batch_failures_are_reported_never_dropped(server, tmp_path):
    cache = VerdictCache(tmp_path)
    # round 1: items 0, 1, 2; round 2: item 1 again
    server.batch_faults.extend(["invalid", "expired", "succeeded", "expired"])
    items = bundles(3)
    judge = make_judge(server, batch=True, batch_max_rounds=2, cache=cache)
    with pytest.raises(JudgeError) as info:
        judge.judge_many(items)
    failures = info.value.failures
    assert sorted(failures) == [0, 1] and len(cache) == 1
    assert "invalid_request_error" in failures[0]
    assert failures[1] == "expired (still failing after 2 batch rounds)"
    check(make_judge(server, batch=True, cache=cache).judge_many(items), items)


def test_dollar_accounting_uses_the_price_constants(server):
    judge = make_judge(server)
    verdicts = judge.judge_many(bundles(3))
    price = PRICES_USD_PER_MTOK["claude-opus-4-7"]
    assert judge.usage.input_tokens == sum(v.input_tokens for v in verdicts) > 0
    assert judge.usage.cost_usd == pytest.approx(
        (judge.usage.input_tokens * price.input + judge.usage.output_tokens * price.output) / 1e6)


def test_tokens_per_call_match_the_authors_recorded_usage(server):
    """Three 1024x1024 images (the paper's size): the fake server's estimate of a lens.color
    call must be within 3% of the 4455 input tokens Anthropic billed the authors for it."""
    judge = make_judge(server)
    verdict = judge.judge("lens.color", [solid((200, 30, 30), (1024, 1024))] * 3)
    assert verdict.input_tokens == pytest.approx(4455, rel=0.03)


def test_environment_variables_configure_the_sdk(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    assert AnthropicJudge(timeout=1).judge("lens.color", [solid((200, 30, 30))] * 3).passed
    assert SECRET in server.message_requests()[0].headers.get("authorization", "") + \
        server.message_requests()[0].headers.get("x-api-key", "")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(JudgeError, match="set the ANTHROPIC_API_KEY environment variable"):
        AnthropicJudge().judge("lens.color", [solid((1, 1, 1))] * 3)


def test_one_key_check_for_the_client_and_the_suite(monkeypatch, tmp_path):
    """``ANTHROPIC_AUTH_TOKEN`` alone is no key for the client, so the suite skips the claim up front
    (with the reason) instead of erroring on its first call: both ask :func:`has_api_key`."""
    from mechinterp.judges.client import has_api_key
    from mechinterp.suite.runner import ClaimSkipped
    from mechinterp.suite.session import SuiteSession

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "token-only")
    assert not has_api_key() and has_api_key("given")
    session = SuiteSession.__new__(SuiteSession)
    with pytest.raises(ClaimSkipped, match="needs ANTHROPIC_API_KEY"):
        session._make_judge("anthropic")
    with pytest.raises(JudgeError, match="set the ANTHROPIC_API_KEY environment variable"):
        AnthropicJudge().judge("lens.color", [solid((1, 1, 1))] * 3)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    assert has_api_key()


def test_plain_completion_client_for_task_authoring(server):
    server.responder = lambda body: "add the lamp | remove the chair"
    client = AnthropicClient(api_key=SECRET, base_url=server.base_url, timeout=1, backoff_base=0)
    server.faults.append("529")
    reply = client.complete("You write instructions.", "a bedroom", max_tokens=50)
    assert reply.text == "add the lamp | remove the chair" and reply.output_tokens > 0
    body = server.message_requests()[-1].json
    assert body["messages"][0]["content"] == [{"type": "text", "text": "a bedroom"}]
    server.faults.append("400")
    with pytest.raises(JudgeAPIError, match="HTTP 400 is not retryable.*fake 400"):
        client.complete("You write instructions.", "a kitchen", max_tokens=50)


def test_the_key_never_appears_in_logs_reprs_errors_or_cache(server, tmp_path, caplog):
    for name in (None, "anthropic", "httpx2", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    cache = VerdictCache(tmp_path)
    server.faults.extend(["429", "hang", "500", "400"])
    judge = make_judge(server, max_concurrency=1, cache=cache)
    with pytest.raises(JudgeError) as info:
        judge.judge_many(bundles(4))
    server.batch_faults.append("errored")
    batch = make_judge(server, batch=True, cache=cache)
    batch.judge_many(bundles(6))
    assert "retry" in caplog.text and "Request options" in caplog.text  # SDK debug log too
    texts = [caplog.text, repr(judge), repr(judge.client), repr(batch), repr(judge.usage),
             str(info.value), repr(info.value.failures)]
    assert not any(SECRET in t for t in texts)
    for path in Path(tmp_path).iterdir():
        assert SECRET.encode() not in path.read_bytes()
