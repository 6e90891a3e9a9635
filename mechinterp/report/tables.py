"""The paper's tables rebuilt from pooled results, and the digit-for-digit check.

A cell prints as in the paper, ``86.2 +3.3 −4.2`` (percent, 95% Wilson bars); a cell
without data prints ``—``. :func:`check_tables` lists every cell whose printed value
differs from the registry's paper value.
"""

from __future__ import annotations

from mechinterp.claims import Claim, Table, claims_by_id
from mechinterp.report.run import ClaimResult

MISSING = "\u2014"


def cell_text(claim_id: str, results: dict[str, ClaimResult]) -> str:
    """The run's value for one cell claim, formatted as the paper prints it."""
    res = results.get(claim_id)
    return res.run_text if res is not None and res.n else MISSING


def align_columns(rows: list[list[str]]) -> list[str]:
    """Left-align a list of rows of cells into plain-text lines (one helper for every text table)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]


def format_table(table: Table, results: dict[str, ClaimResult]) -> str:
    """One table as aligned plain text: header of column labels, one line per row."""
    header = [""] + [label for _, label in table.columns]
    lines = [header]
    for rkey, rlabel in table.rows:
        lines.append([rlabel] + [
            cell_text(table.cells[(rkey, ckey)], results) if (rkey, ckey) in table.cells else MISSING
            for ckey, _ in table.columns
        ])
    return "\n".join([table.title, *align_columns(lines)])


def format_tables(tables: list[Table], results: dict[str, ClaimResult]) -> str:
    """All tables, separated by blank lines."""
    return "\n\n".join(format_table(t, results) for t in tables)


def check_tables(tables: list[Table], results: dict[str, ClaimResult], claims: list[Claim]) -> list[str]:
    """Every table cell whose value differs from the paper's printed value (empty = all match)."""
    index = claims_by_id(claims)
    problems = []
    for table in tables:
        for (rkey, ckey), cid in sorted(table.cells.items()):
            paper = index[cid].paper
            got = cell_text(cid, results)
            if paper is None:
                problems.append(f"{table.id}:{rkey}:{ckey} ({cid}): the registry has no paper value")
            elif got != paper.text:
                problems.append(f"{table.id}:{rkey}:{ckey} ({cid}): paper {paper.text}, data {got}")
            elif paper.n is not None and results[cid].n != paper.n:
                problems.append(f"{table.id}:{rkey}:{ckey} ({cid}): paper n={paper.n}, data n={results[cid].n}")
    return problems


def table_cell_count(tables: list[Table]) -> int:
    """Number of filled cells over all tables."""
    return sum(len(t.cells) for t in tables)
