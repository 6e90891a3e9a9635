"""SUN397 add/remove instruction generation through the real Anthropic SDK against a fake server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from mechinterp.judges.client import AnthropicClient
from mechinterp.tasks import TaskDataError, load_family, task_seed
from mechinterp.tasks.instructions import (
    FORBIDDEN_HEAD_NOUNS, SUN397_PROMPT, InstructionError, ObjectProposal, ProposalCache, Sun397Image,
    generate_sun397_rows, parse_proposal, propose_objects,
)
from mechinterp.testing.fake_anthropic import FakeAnthropicServer

PAPER = Path(__file__).resolve().parents[1].parent / "shared" / "paper" / "002_571447450c379c4a.txt"


@pytest.fixture
def server():
    with FakeAnthropicServer() as srv:
        yield srv


@pytest.fixture
def client(server):
    return AnthropicClient(model="claude-opus-4-7", api_key="test-key", base_url=server.base_url,
                           max_retries=2, backoff_base=0.001, timeout=10)


def _images(root: Path, n: int = 3) -> list[Sun397Image]:
    images = []
    for i in range(n):
        rel = f"data/sun397/sun397_k_kitchen__sun_{i}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 16), (60 * i, 100, 20)).save(root / rel)
        images.append(Sun397Image(rel, f"/k/kitchen{i}", f"sun_{i}.jpg"))
    return images


def _scripted(replies: list[str]):
    queue = list(replies)
    return lambda body: queue.pop(0)


def test_generation_drives_the_real_sdk_and_a_rerun_makes_no_call(server, client, tmp_path):
    server.responder = _scripted([
        '{"add_object": "umbrella", "remove_object": "wooden chair"}',
        '{"add_object": "lamp", "remove_object": null}',
        '{"add_object": null, "remove_object": "rug"}',
    ])
    images = _images(tmp_path)
    cache = tmp_path / "cache" / "sun397.json"
    rows = generate_sun397_rows(tmp_path, images, cache, client)
    assert [r["instruction"] for r in rows["add"]] == ["add an umbrella", "add a lamp"]
    assert [r["instruction"] for r in rows["remove"]] == ["remove the wooden chair", "remove the rug"]
    assert rows["remove"][0]["task_id"] == "remove_sun397_k_kitchen__sun_0_wooden_chair"
    assert rows["add"][0]["noise_seed"] == task_seed("add_sun397_k_kitchen__sun_0_umbrella")

    requests = server.message_requests()
    assert len(requests) == 3
    body = requests[0].json
    assert body["model"] == "claude-opus-4-7" and body["system"][0]["text"] == SUN397_PROMPT
    assert [b["type"] for b in body["messages"][0]["content"]] == ["text", "image", "text"]
    headers = requests[0].headers
    assert headers["user-agent"].startswith("Anthropic/Python")  # the real SDK made the call
    assert "test-key" in (headers.get("x-api-key", ""), headers.get("authorization", "").removeprefix("Bearer "))

    # the rows are the authors' format: written to a data dir they load as the add family
    (tmp_path / "tasks").mkdir()
    for edit in ("add", "remove"):
        (tmp_path / "tasks" / f"{edit}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[edit]))
    tasks = load_family("add", tmp_path)
    assert [t.instruction for t in tasks] == ["add an umbrella", "add a lamp"]
    assert tasks[0].stratum == "/k/kitchen0" and (tasks[0].width, tasks[0].height) == (32, 16)

    # rerun: everything from the cache, no request, same rows (a client with no server at all)
    offline = AnthropicClient(model="claude-opus-4-7", api_key="unused", base_url="http://127.0.0.1:9", max_retries=0)
    assert generate_sun397_rows(tmp_path, images, cache, offline) == rows
    assert len(server.message_requests()) == 3


def test_forbidden_head_noun_is_rejected_in_code_and_retried(server, client, tmp_path):
    server.responder = _scripted([
        '{"add_object": "small dog", "remove_object": "rug"}',
        '{"add_object": "lamp", "remove_object": "park benches"}',
        '{"add_object": "lamp", "remove_object": "rug"}',
    ])
    image = Image.new("RGB", (16, 16), (1, 2, 3))
    proposal = propose_objects(image, client, ProposalCache(tmp_path / "c.json"))
    assert proposal == ObjectProposal("lamp", "rug")
    assert len(server.message_requests()) == 3


def test_no_valid_reply_names_every_rejection(server, client, tmp_path):
    server.responder = _scripted(['{"add_object": "water bottle", "remove_object": null}', "sure! a lamp", '["lamp"]'])
    with pytest.raises(InstructionError) as info:
        propose_objects(Image.new("RGB", (8, 8)), client, ProposalCache(tmp_path / "c.json"))
    message = str(info.value)
    assert "no valid proposal after 3 replies from 'claude-opus-4-7'" in message
    assert "forbidden head noun 'bottle'" in message and "not JSON" in message and "got list" in message
    assert not (tmp_path / "c.json").exists()  # nothing invalid is cached


@pytest.mark.parametrize(("reply", "match"), [
    ('{"add_object": "Lamp", "remove_object": null}', "not 1-4 lowercase words"),
    ('{"add_object": "a very big red lamp", "remove_object": null}', "not 1-4 lowercase words"),
    ('{"add_object": "lamp.", "remove_object": null}', "not 1-4 lowercase words"),
    ('{"add_object": null, "remove_object": null}', "both add_object and remove_object are null"),
    ('{"add_object": "lamp", "remove_object": "lamp"}', "must differ, both are 'lamp'"),
    ('{"add_object": "lamp"}', r"keys add_object and remove_object, got \['add_object'\]"),
    ('{"add_object": "lamp", "remove_object": "person", "x": 1}', "got"),
    ('{"add_object": "hiking backpack", "remove_object": null}', "forbidden head noun 'backpack'"),
    ('{"add_object": "lamp", "remove_object": "potted plants"}', "forbidden head noun 'plants'"),
    ('{"add_object": "mountain-bicycle", "remove_object": null}', "forbidden head noun 'bicycle'"),
])
def test_invalid_replies(reply, match):
    with pytest.raises(InstructionError, match=match):
        parse_proposal(reply)


def test_accepted_replies():
    assert parse_proposal('```json\n{"add_object": "dog bowl", "remove_object": null}\n```') == ObjectProposal("dog bowl", None)
    assert parse_proposal(' {"add_object": null, "remove_object": "bird feeder"} ') == ObjectProposal(None, "bird feeder")


def test_hand_edited_cache_obeys_the_same_rules(tmp_path):
    cache = ProposalCache(tmp_path / "c.json")
    key = cache.key(Image.new("RGB", (8, 8)), SUN397_PROMPT, "m")
    cache.put(key, ObjectProposal("lamp", None))
    assert cache.get(key) == ObjectProposal("lamp", None)
    data = json.loads(cache.path.read_text())
    data[key]["add_object"] = "bench"
    cache.path.write_text(json.dumps(data))
    with pytest.raises(TaskDataError, match="forbidden head noun 'bench'"):
        cache.get(key)


def test_cache_key_depends_on_pixels_prompt_and_model():
    a, b = Image.new("RGB", (8, 8), (1, 1, 1)), Image.new("RGB", (8, 8), (1, 1, 2))
    keys = {ProposalCache.key(a, "p", "m"), ProposalCache.key(b, "p", "m"), ProposalCache.key(a, "q", "m"),
            ProposalCache.key(a, "p", "n")}
    assert len(keys) == 4
    assert ProposalCache.key(a, "p", "m") == ProposalCache.key(a.convert("RGBA").convert("RGB"), "p", "m")


def test_forbidden_list_in_code_is_the_one_in_the_prompt():
    listed = re.search(r"head noun\): (.*?)\.", SUN397_PROMPT).group(1)
    assert {w.strip() for w in listed.split(",")} == FORBIDDEN_HEAD_NOUNS


@pytest.mark.skipif(not PAPER.is_file(), reason="paper text not available")
def test_prompt_is_appendix_f1():
    paper = " ".join(PAPER.read_text(encoding="utf-8").split())
    start = paper.index("You design test cases")
    lines = [line.strip() for line in SUN397_PROMPT.splitlines() if line.strip()]
    assert len(lines) == 13
    for line in lines:
        if line.startswith("{"):  # the JSON schema is fenced and wrapped in the paper
            continue
        assert line in paper[start:start + 3000], line
