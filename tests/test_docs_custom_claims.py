"""docs/custom-claims.md lists exactly what the claim loader accepts (families, task families, markers, questions)."""

from __future__ import annotations

import re
from itertools import product
from pathlib import Path

from mechinterp.vocabulary import FAMILIES, TASK_FAMILIES, markers
from mechinterp.judges.questions import QUESTIONS

DOC = (Path(__file__).resolve().parents[1] / "docs" / "custom-claims.md").read_text()


def _choices(key: str) -> set[str]:
    """The ``a | b | c`` list in the comment of the template's ``key = ...`` line."""
    line = next(line for line in DOC.splitlines() if line.startswith(f"{key} = "))
    comment = line.split("#", 1)[1].split("(")[0]
    return {part.strip() for part in comment.split("|")}


def test_template_lists_the_loaders_choices():
    assert _choices("family") == set(FAMILIES)
    assert _choices("tasks") == set(TASK_FAMILIES)
    assert _choices("markers") == set(markers())


def test_question_row_lists_every_question():
    row = next(line for line in DOC.splitlines() if line.startswith("| `question` |"))
    listed = set()
    for clause in row.split(":", 1)[1].split("(")[0].split(";"):
        banks, props = clause.split(" with ")
        listed |= {f"{b}.{p}" for b, p in product(re.findall(r"`(\w+)`", banks), re.findall(r"`(\w+)`", props))}
    assert listed == set(QUESTIONS)
