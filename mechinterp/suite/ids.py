"""Test ids for claims: the claim id in a spelling pytest's ``-k`` accepts.

Claim ids use ``->`` (knockout edges), ``>``/``>>``/``~`` (relations) and other characters that
``-k`` expressions reject. :func:`test_id` spells them out (``knockout[ref->text]-color`` →
``knockout[ref-to-text]-color``, ``rel[ko.text>ko.image]-color`` → ``rel[ko.text-gt-ko.image]-color``) and
leaves everything ``-k`` accepts (letters, digits, ``_ . : + - [ ] /``) as it is, so the test id *is*
the claim id wherever the claim id was already safe. :func:`test_ids` checks the spelling keeps a
run's ids unique; junit and the report keep the real claim id.
"""

from __future__ import annotations

import re

#: spelled-out replacements, longest first
REPLACEMENTS = (("->", "-to-"), (">>", "-much-gt-"), (">=", "-ge-"), ("<=", "-le-"), (">", "-gt-"), ("<", "-lt-"),
                ("~", "-approx-"), (" ", "_"))
_SAFE = re.compile(r"[\w.:+\-\[\]/]")


def test_id(claim_id: str) -> str:
    """``claim_id`` spelled so that ``pytest -k`` accepts it (see the module docstring)."""
    out, i = [], 0
    while i < len(claim_id):
        for old, new in REPLACEMENTS:
            if claim_id.startswith(old, i):
                out.append(new)
                i += len(old)
                break
        else:
            ch = claim_id[i]
            out.append(ch if _SAFE.fullmatch(ch) else f"-x{ord(ch):x}-")
            i += 1
    return "".join(out)


test_id.__test__ = False  # not a test (pytest collects ``test_*`` functions it finds in imported modules)


def test_ids(claim_ids) -> dict[str, str]:
    """``{claim id: test id}``; ``ValueError`` naming both claims when two ids spell the same."""
    seen: dict[str, str] = {}
    for cid in claim_ids:
        tid = test_id(cid)
        if tid in seen and seen[tid] != cid:
            raise ValueError(f"claims {seen[tid]!r} and {cid!r} have the same test id {tid!r}; rename one")
        seen[tid] = cid
    return {cid: tid for tid, cid in seen.items()}


test_ids.__test__ = False


_PARAM = re.compile(r"\[(?P<param>.+)\](?:@[^\[\]]*)?$")


def claim_ids_of_node_ids(node_ids, claim_ids) -> list[str]:
    """The claim ids (of ``claim_ids``) that collected node ids run (``test_knockout[<test id>]``, possibly
    tagged ``@group``; a user claims file's item named by its test id), each once, in node order. The
    xdist controller has only the node ids its workers collected."""
    by_test_id = {tid: cid for cid, tid in test_ids(claim_ids).items()}
    out: dict[str, None] = {}
    for nid in node_ids:
        last = nid.rsplit("::", 1)[-1]
        m = _PARAM.search(last)
        for name in ((m.group("param"),) if m else ()) + (last.split("@", 1)[0],):
            if name in by_test_id:
                out.setdefault(by_test_id[name])
                break
    return list(out)
