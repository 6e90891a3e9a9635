"""Read the authors' released per-sample verdicts (``verdicts/*.csv``) as a run.

Each cell claim with a ``csv`` names its file; a row ``entity_id,pass,reason,model,
input_tokens,output_tokens`` becomes one :class:`~mechinterp.report.run.Verdict` with the
judge's raw pass. The claim's polarity is applied later, when pooling, exactly as for our
own runs — so the same code path that checks a new model also reproduces the paper.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from mechinterp.claims import Claim
from mechinterp.report.run import Verdict

_PASS = {"1": True, "0": False, "": None}


def load_released(verdicts_dir: str | Path, claims: list[Claim]) -> tuple[list[Verdict], dict[str, Any]]:
    """Verdicts and run metadata from a released CSV folder; claims whose CSV is absent are skipped."""
    root = Path(verdicts_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"verdicts folder {root} does not exist")
    verdicts: list[Verdict] = []
    judges: set[str] = set()
    tokens = {"input": 0, "output": 0}
    used: list[str] = []
    for claim in claims:
        if claim.csv is None or not (root / claim.csv).is_file():
            continue
        used.append(claim.csv)
        with open(root / claim.csv, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                raw = (row.get("pass") or "").strip()
                if raw not in _PASS:
                    raise ValueError(f"{claim.csv}: pass value {raw!r} for {row.get('entity_id')!r} is not 1, 0 or empty")
                verdicts.append(Verdict(claim.id, row["entity_id"], claim.question, _PASS[raw],
                                        row.get("reason") or "", row.get("model") or ""))
                judges.add(row.get("model") or "")
                for key in tokens:
                    tokens[key] += int(row.get(f"{key}_tokens") or 0)
    meta = {
        "name": "released verdicts",
        "source": str(root),
        "model": {"id": "black-forest-labs/FLUX.2 (paper)", "revision": None},
        "judge": {"name": "released", "model": ", ".join(sorted(j for j in judges if j))},
        "seeds": None,
        "cost": {"judge_input_tokens": tokens["input"], "judge_output_tokens": tokens["output"], "usd": None},
        "files": used,
    }
    return verdicts, meta
