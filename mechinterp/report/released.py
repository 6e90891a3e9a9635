"""Read the authors' released per-sample verdicts (``verdicts/*.csv``) as a run.

Each cell claim with a ``csv`` names its file; a row ``entity_id,pass,reason,model,
input_tokens,output_tokens`` becomes one :class:`~mechinterp.report.run.VerdictRow` with the
judge's raw pass. The claim's polarity is applied later, when pooling, exactly as for our
own runs — so the same code path that checks a new model also reproduces the paper.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from mechinterp.claims import Claim
from mechinterp.report.meta import RunMeta
from mechinterp.judges.verdict import Verdict
from mechinterp.report.run import VerdictRow

_PASS = {"1": True, "0": False, "": None}
#: how a released CSV names a patching pair: ``<source task id>__<target task id>``
PAIR_SEPARATOR = "__"


def released_entity(item) -> str:
    """The ``entity_id`` a released CSV gives a task (its id) or a patching pair (source__target)."""
    source = getattr(item, "source", None)
    return f"{source.task_id}{PAIR_SEPARATOR}{item.target.task_id}" if source is not None else item.task_id


@dataclass(frozen=True)
class ReleasedRow:
    """One released verdict: the task (or pair), the raw judge pass (None = abstained), reason, judge, tokens."""

    entity: str
    passed: bool | None
    reason: str
    model: str
    input_tokens: int
    output_tokens: int

    def verdict(self, question_id: str) -> Verdict:
        """This row as the judge's :class:`~mechinterp.judges.Verdict` on ``question_id`` (judge ``authors:<model>``)."""
        return Verdict(self.passed, self.reason, f"authors:{self.model or 'unknown'}:{question_id}",
                       self.input_tokens, self.output_tokens)


def read_released_rows(path: str | Path) -> list[ReleasedRow]:
    """The rows of one released verdict CSV; a ``pass`` other than 1, 0 or empty is an error naming the file."""
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            raw = (rec.get("pass") or "").strip()
            if raw not in _PASS:
                raise ValueError(f"{path}: pass value {raw!r} for {rec.get('entity_id')!r} is not 1, 0 or empty")
            rows.append(ReleasedRow(rec["entity_id"], _PASS[raw], rec.get("reason") or "", rec.get("model") or "",
                                    int(rec.get("input_tokens") or 0), int(rec.get("output_tokens") or 0)))
    return rows


def load_released(verdicts_dir: str | Path, claims: list[Claim]) -> tuple[list[VerdictRow], RunMeta]:
    """Verdicts and run metadata from a released CSV folder; claims whose CSV is absent are skipped.

    The judge cost is the rows' tokens at list price (synchronous API) when every judge model
    in them has a price in ``mechinterp.judges.usage``, else unknown.
    """
    from mechinterp.judges.usage import price_for

    root = Path(verdicts_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"verdicts folder {root} does not exist")
    verdicts: list[VerdictRow] = []
    judges: set[str] = set()
    calls = tokens_in = tokens_out = 0
    cost: float | None = 0.0
    used: list[str] = []
    for claim in claims:
        if claim.csv is None or not (root / claim.csv).is_file():
            continue
        used.append(claim.csv)
        for row in read_released_rows(root / claim.csv):
            verdicts.append(VerdictRow(claim.id, row.entity, row.verdict(claim.question)))
            judges.add(row.model)
            calls += 1
            tokens_in += row.input_tokens
            tokens_out += row.output_tokens
            price = price_for(row.model)
            cost = None if cost is None or price is None else cost + price.dollars(row.input_tokens, row.output_tokens)
    meta = RunMeta(name="released verdicts", source=str(root), model="black-forest-labs/FLUX.2 (paper)",
                   judge="released", judge_model=", ".join(sorted(j for j in judges if j)) or None,
                   judge_calls=calls, judge_input_tokens=tokens_in, judge_output_tokens=tokens_out,
                   judge_cost_usd=None if cost is None else round(cost, 4), files=used)
    return verdicts, meta
