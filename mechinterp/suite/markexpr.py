"""A ``-m`` expression's marker names, checked against the markers that exist.

pytest's ``-m`` accepts any word: ``-m colour`` (for ``color``) selects nothing and the run says only
"57 deselected", or (under ``--strict-markers``) that the name is unknown, without saying which names
are known. A claims session checks the words itself (:func:`check_markexpr`) and stops with one usage
error naming the unknown word, the nearest known one and the markers the claims carry.
"""

from __future__ import annotations

import difflib
import re

#: a marker name as pytest's ``-m`` grammar reads one (``_pytest.mark.expression``)
_IDENT = re.compile(r"(?:\w|:|\+|-|\.|\[|\]|\\|/)+")
#: a marker's keyword arguments, ``color(kind="x")``: their names and values are no marker names
_KWARGS = re.compile(r"\((?:[^()'\"]|'[^']*'|\"[^\"]*\")*\)")
_OPERATORS = {"and", "or", "not"}


def marker_names(markexpr: str) -> list[str]:
    """The marker names ``markexpr`` (a ``-m`` expression) refers to, in order of first appearance: its
    words without the operators (``and``, ``or``, ``not``) and without keyword arguments."""
    words = _IDENT.findall(_KWARGS.sub(" ", markexpr))
    return list(dict.fromkeys(w for w in words if w not in _OPERATORS))


def registered_marker(line: str) -> str:
    """The marker name of one ``markers`` ini line (``"color: colour claims"``, ``"skipif(condition): ..."``)."""
    return re.split(r"[:(]", line, maxsplit=1)[0].strip()


def check_markexpr(markexpr: str, known: set[str], claim_markers: set[str]) -> str | None:
    """``None`` when every marker name of ``markexpr`` is in ``known`` (registered markers and the markers
    of the collected tests); else the usage error: each unknown name, the nearest known name, and the
    markers the collected claims carry (what a ``-m`` of a claims run picks from)."""
    unknown = [name for name in marker_names(markexpr) if name not in known]
    if not unknown:
        return None
    parts = []
    for name in unknown:
        near = difflib.get_close_matches(name, sorted(claim_markers) + sorted(known - claim_markers), n=1)
        parts.append(f"{name!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
    return (f"-m {markexpr!r}: {', '.join(parts)} {'is' if len(unknown) == 1 else 'are'} no marker of the "
            f"claims and no registered marker; the claims' markers are: {', '.join(sorted(claim_markers))} "
            "(all markers: pytest --markers)")
