"""The judge-reply parser: strict JSON, tolerant extraction, abstention on anything else."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mechinterp.judges import Verdict, parse_reply

VERDICTS = (Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "i2i-interp"
            / "verdicts")

reasons = st.text(max_size=120).filter(
    lambda r: r.strip().lower().rstrip(".! ") != "cannot determine")
pass_values = st.sampled_from([0, 1, True, False, "0", "1"])
# prose around the JSON: no braces, so it cannot hide another object
prose = st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=60)


def expected(value) -> bool:
    return value in (1, True, "1")


@given(value=pass_values, reason=reasons, ascii_only=st.booleans())
def test_one_line_json_round_trips(value, reason, ascii_only):
    reply = json.dumps({"pass": value, "reason": reason}, ensure_ascii=ascii_only)
    parsed = parse_reply(reply)
    assert (parsed.passed, parsed.reason) == (expected(value), reason)
    assert parsed.strict is ("\n" not in reply)


@given(value=pass_values, reason=reasons, before=prose, after=prose,
       fence=st.sampled_from(["", "```json\n", "```\n"]), indent=st.sampled_from([None, 2]))
def test_json_is_extracted_from_stray_text(value, reason, before, after, fence, indent):
    obj = json.dumps({"pass": value, "reason": reason}, indent=indent)
    reply = f"{before}{fence}{obj}{chr(10) + '```' if fence else ''}{after}"
    parsed = parse_reply(reply)
    assert (parsed.passed, parsed.reason) == (expected(value), reason)


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises_and_never_invents_a_verdict(text):
    parsed = parse_reply(text)
    assert parsed.passed in (True, False, None)
    if '"pass"' not in text and "'pass'" not in text:
        assert parsed.passed is None


@given(bad=st.one_of(st.integers().filter(lambda v: v not in (0, 1)), st.floats(),
                     st.none(), st.sampled_from(["yes", "no", "true", "2", ""]),
                     st.lists(st.integers(), max_size=2)))
def test_pass_values_other_than_0_or_1_abstain(bad):
    assert parse_reply(json.dumps({"pass": bad, "reason": "r"})).passed is None


@pytest.mark.parametrize("reply", [
    '{"pass": 0, "reason": "cannot determine"}', '{"pass": 0, "reason": "Cannot determine."}',
    '{"pass": 1, "reason": "cannot determine"}', "", "I think yes.", '{"pass": 1, "reason": "x"',
    "```json\n```", "[1, 2]", '{"reason": "no pass field"}', "null",
])
def test_abstentions(reply):
    assert parse_reply(reply).passed is None


def test_first_verdict_object_wins_and_other_objects_are_skipped():
    reply = 'Context {"image": 3} then {"pass": 1, "reason": "a"} and {"pass": 0, "reason": "b"}'
    assert (parse_reply(reply).passed, parse_reply(reply).reason) == (True, "a")


def test_verdict_record_round_trip_and_rejects_tampering():
    v = Verdict(True, "ok ✓", "anthropic:claude-opus-4-7:lens.color", 10, 2)
    assert Verdict.from_json(v.to_json(), cached=True) == Verdict(
        True, "ok ✓", "anthropic:claude-opus-4-7:lens.color", 10, 2, cached=True)
    for bad in ('{"passed": 2, "reason": "", "judge": "", "input_tokens": 0, "output_tokens": 0}',
                '{"passed": true}', "[]", "{"):
        with pytest.raises(ValueError):
            Verdict.from_json(bad)


def test_every_released_reply_format_parses():
    """The authors' released verdicts are the parsed (pass, reason) of real Opus 4.7 replies;
    each must survive the reply format the prompt asks for, and the usual wrappings, intact."""
    if not VERDICTS.is_dir():
        pytest.skip(f"released verdicts not found at {VERDICTS}")
    rows = [row for path in sorted(VERDICTS.glob("*.csv"))
            for row in csv.DictReader(open(path, newline=""))]
    assert len(rows) > 10_000
    for row in rows:
        passed = {"1": True, "0": False}[row["pass"]]
        one_line = json.dumps({"pass": int(row["pass"]), "reason": row["reason"]},
                              ensure_ascii=False)
        for reply in (one_line, f"```json\n{one_line}\n```", f"Verdict: {one_line}"):
            parsed = parse_reply(reply)
            assert (parsed.passed, parsed.reason) == (passed, row["reason"]), reply
