"""The expected decision of every colour and human-identity claim per organism, read from
``mechinterp/claims/organisms.toml`` (the colour organisms pin colour claims, the identity organisms
human ones)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from mechinterp.organisms.spec import ORGANISMS
from mechinterp.resources import package_path

#: the data file, shipped in the package next to the claim registry
EXPECTED_FILE = package_path("claims", "organisms.toml")
DECISIONS = ("holds", "refuted", "open")


def expected_decisions(path: str | Path | None = None) -> dict[str, dict[str, str]]:
    """``{organism: {claim id: "holds" | "refuted" | "open"}}``; ``ValueError`` naming the file on bad data."""
    path = Path(path or EXPECTED_FILE)
    if not path.is_file():
        raise ValueError(f"expected-decisions file {str(path)!r} is missing")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"expected-decisions file {str(path)!r} is not valid TOML: {err}") from err
    from mechinterp.claims import load_registry

    colour_claims = [c.id for c in load_registry()
                     if ("color" in c.markers and not c.is_relation) or c.family == "human"]
    for name, table in data.items():
        if name not in ORGANISMS:
            raise ValueError(f"{str(path)!r}: unknown organism {name!r}; valid organisms: {', '.join(ORGANISMS)}")
        for claim, decision in table.items():
            if claim not in colour_claims:
                raise ValueError(f"{str(path)!r}: [{name}] unknown claim {claim!r}; valid claims: {', '.join(colour_claims)}")
            if decision not in DECISIONS:
                raise ValueError(f"{str(path)!r}: [{name}] {claim} = {decision!r}; valid: {', '.join(DECISIONS)}")
    return data


def as_expected(expected: dict[str, dict[str, str]], organism: str, claim: str, decision: str) -> bool | None:
    """Whether ``decision`` is the one ``expected`` pins for ``claim`` on ``organism``.

    ``None`` when nothing is pinned (the claim is ``"open"`` or not listed for the organism).
    """
    want = expected.get(organism, {}).get(claim, "open")
    return None if want == "open" else want == decision
