"""The claim registry: every number and relation the paper asserts, as data.

``registry.toml`` (shipped in this package, ``mechinterp/claims/registry.toml``) holds
``[[table]]`` layouts and ``[[claim]]`` records; users add their own as ``*.claims.toml`` files. A *cell* claim is
one pooled rate (a table cell or a figure's rate) with a threshold hypothesis; a
*relation* claim compares two cell claims ``a`` and ``b`` with a hypothesis on ``a - b``.

A relation whose cells draw the same tasks (:attr:`Claim.draws`) is decided on both arms paired
by task; one whose cells draw different tasks — cells of different families, such as Table 1's
ordering from colour to human identity — is *unpaired* (:attr:`Claim.unpaired`, set when the
registry is read): each arm draws its own tasks and the two rates are compared as independent
samples. A relation carries both cells' markers unless it names its own (``markers``: a subset
that keeps a family of its cells and the experiments both share), so that a relation between
families runs in the one job that has everything both cells need.

Claim ids read ``<experiment>[<setting>]-<subject>``, e.g. ``knockout[ref->text]-color``,
``patching[single.9:text.padding]-color``, ``lens[double.7]-human``, and relations
``rel[ko.text>ko.image]-color`` (between families: ``rel[lens.color>lens.human]-cross``); they
are valid pytest ids once spelled for ``-k`` (:mod:`mechinterp.suite.ids`). The header of the TOML file
documents the scheme and the threshold vocabulary.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from mechinterp.stats import TALLIES, ArmsTally, Decision, Hypothesis, Interval, PairTally, Tally, decide, design_kind
from mechinterp.vocabulary import (
    EXPERIMENTS, FAMILIES, PAIR_FAMILIES, TASK_FAMILIES, canonical_experiment, canonical_question, markers,
)
_SITE = re.compile(r"^(embed|double\.\d+|single\.\d+)$")
_SITE_KEYS = ("site", "cutoff")
_SWEEP_END = "sweep_to"
_GROUP_KEYS = ("tokens", "source", "dest")
_TRANSITION_KEYS = ("at", "within", "holds")


def default_registry_path() -> Path:
    """The paper's registry, shipped inside the package (``mechinterp/claims/registry.toml``)."""
    from mechinterp.resources import package_path

    return package_path("claims", "registry.toml")


def registry_path(path: str | Path | None = None) -> Path:
    """Resolve a registry location: a TOML file, a ``claims/`` folder, or a repo root."""
    if path is None:
        return default_registry_path()
    p = Path(path)
    for candidate in (p, p / "registry.toml", p / "claims" / "registry.toml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no claim registry at {p} (looked for {p}, {p}/registry.toml, {p}/claims/registry.toml)")


@dataclass(frozen=True)
class PaperValue:
    """A printed cell: percent value with its Wilson bars, and the paper's sample count."""

    value: float
    plus: float
    minus: float
    n: int | None = None

    @property
    def text(self) -> str:
        """As printed: ``86.2 +3.3 −4.2``."""
        return f"{self.value:.1f} +{self.plus:.1f} \u2212{self.minus:.1f}"


@dataclass(frozen=True)
class Experiment:
    """An experiment of the engine with its parameters (site, groups, tokens, ...)."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    def get(self, key: str, default: Any = None) -> Any:
        """One parameter, or ``default``."""
        return dict(self.params).get(key, default)

    def as_dict(self) -> dict[str, Any]:
        """``{"name": ..., **params}`` for JSON and reports."""
        return {"name": self.name, **dict(self.params)}

    def __str__(self) -> str:
        return self.name + "(" + ", ".join(f"{k}={v}" for k, v in self.params) + ")"


@dataclass(frozen=True)
class Transition:
    """Where a sweep claim's per-site hypothesis changes: ``at`` is the first site past the crossing
    (in the claim's numbering, mapped like the sweep's own site), ``within`` its tolerance in blocks,
    ``holds`` the side (``before`` / ``after``) on which the per-site hypothesis holds
    (:mod:`mechinterp.stats.transition` states the rule that decides it)."""

    at: str
    within: int
    holds: str

    def __str__(self) -> str:
        return f"crossing at {self.at} \u00b1{self.within} (hypothesis holds {self.holds} it)"


@dataclass(frozen=True)
class Claim:
    """One claim of the paper: what is measured, what the paper printed, what is tested."""

    id: str
    statement: str
    hypothesis: Hypothesis
    where: str = ""
    family: str | None = None
    tasks: tuple[str, ...] = ()
    experiment: Experiment | None = None
    question: str | None = None
    markers: tuple[str, ...] = ()
    paper: PaperValue | None = None
    cells: tuple[str, ...] = ()
    csv: str | None = None
    a: str | None = None
    b: str | None = None
    power_at: float | None = None  # the true rate (relations: a - b) its budget is planned for
    transition: Transition | None = None  # a sweep claim about where its rate crosses the threshold
    unpaired: bool = False  # a relation whose cells draw different tasks: two independent arms

    @property
    def is_relation(self) -> bool:
        """True for a comparison between two cell claims."""
        return self.a is not None

    @property
    def draws(self) -> tuple[str, bool] | None:
        """``(family, pairs)``: the task family a cell claim draws from (its ``tasks``, else its family) and
        whether it draws that family's patching pairs; ``None`` for a relation. A model may map the family
        to another (:func:`mechinterp.claims.draws.drawn_family`)."""
        if self.is_relation:
            return None
        family = self.tasks[0] if self.tasks else self.family
        return family, bool(self.experiment is not None and EXPERIMENTS[self.experiment.name].pairs)

    @property
    def kind(self) -> str:
        """What its sequential design counts (:func:`mechinterp.stats.design_kind`): ``rate``, ``paired`` or ``unpaired``."""
        return design_kind(self.is_relation, self.unpaired)

    @property
    def has_released_data(self) -> bool:
        """True when the authors released per-sample verdicts for this cell."""
        return self.csv is not None

    @property
    def polarity(self) -> str | None:
        """Its question's polarity (``None`` for a relation): polarity lives on the question."""
        from mechinterp.judges.questions import QUESTIONS

        return None if self.question is None else QUESTIONS[self.question].polarity

    def success(self, passed: bool) -> bool:
        """Map a judge's raw pass to this claim's reported outcome (applies its question's polarity)."""
        return bool(passed) if self.polarity == "pass" else not passed

    def decide(self, counts: Tally | PairTally | ArmsTally) -> tuple[Decision, Interval]:
        """Fixed-sample decision on pooled counts: a :class:`Tally` for a cell, a :class:`PairTally`
        (paired by task) for a paired relation, an :class:`ArmsTally` for an unpaired one; the 95 %
        interval of the answers."""
        if self.is_relation and not isinstance(counts, TALLIES[self.kind]):
            need = "two arms' counts (an ArmsTally)" if self.unpaired else "paired counts (a PairTally)"
            raise ValueError(f"relation {self.id!r} is {self.kind}: it needs {need}, got {counts!r}")
        return decide(self.hypothesis, counts)


@dataclass(frozen=True)
class Table:
    """Layout of one paper table: ordered rows and columns as ``(key, label)`` pairs."""

    id: str
    title: str
    rows: tuple[tuple[str, str], ...]
    columns: tuple[tuple[str, str], ...]
    cells: dict[tuple[str, str], str] = field(default_factory=dict, compare=False, hash=False)


def _choice(value: Any, valid: tuple[str, ...] | dict, what: str, cid: str) -> Any:
    if value not in valid:
        raise ValueError(f"claim {cid!r}: {what} {value!r} is not one of {', '.join(valid)}")
    return value


def _experiment(raw: dict, cid: str) -> Experiment:
    raw = dict(raw)
    name = _choice(canonical_experiment(raw.pop("name", None)), EXPERIMENTS, "experiment", cid)
    from mechinterp.engine.layout import GROUPS

    for key in _GROUP_KEYS:
        if key in raw and raw[key] not in GROUPS:
            raise ValueError(f"claim {cid!r}: {key} {raw[key]!r} is not a token group; valid groups: {', '.join(GROUPS)}")
    for key in _SITE_KEYS:
        if key in raw and not _SITE.match(str(raw[key])):
            raise ValueError(f"claim {cid!r}: {key} {raw[key]!r} is not a site (embed, double.N, single.N)")
    if _SWEEP_END in raw and ("sweep" not in raw or not _SITE.match(str(raw[_SWEEP_END]))):
        raise ValueError(f"claim {cid!r}: {_SWEEP_END} {raw[_SWEEP_END]!r} must be a site and needs a sweep")
    if "sweep" in raw and (raw["sweep"] not in _SITE_KEYS or raw["sweep"] not in raw):
        raise ValueError(f"claim {cid!r}: sweep {raw['sweep']!r} must name the experiment's own site parameter "
                         f"({' or '.join(k for k in _SITE_KEYS if k in raw) or 'none given'}), the sweep's first site")
    return Experiment(name, tuple(sorted(raw.items())))


def _question(qid: str, exp: Experiment, family: str, cid: str, polarity: Any = None) -> str:
    """``qid`` when the question bank has it and it judges ``exp`` on ``family`` (its token variant included)."""
    from mechinterp.judges.questions import QUESTIONS

    q = QUESTIONS.get(qid)
    if q is None:
        raise ValueError(f"claim {cid!r}: unknown question {qid!r}; valid questions: {', '.join(sorted(QUESTIONS))}")
    kind = EXPERIMENTS[exp.name]
    if q.experiment not in kind.questions:
        raise ValueError(f"claim {cid!r}: question {qid!r} judges {q.experiment!r} bundles, not {exp.name!r} "
                         f"(expected a {' / '.join(kind.questions)} question)")
    if q.family != FAMILIES[family].question:
        raise ValueError(f"claim {cid!r}: question {qid!r} asks about {q.family!r}, but the claim's family "
                         f"{family!r} is judged by *.{FAMILIES[family].question} questions")
    if polarity is not None and polarity != q.polarity:
        raise ValueError(f"claim {cid!r}: polarity {polarity!r} contradicts its question {qid!r}, whose polarity is "
                         f"{q.polarity!r} (polarity lives on the question: leave it out)")
    tokens = exp.get("tokens", "text")
    if kind.token_variants and q.tokens != tokens:
        raise ValueError(f"claim {cid!r}: question {qid!r} labels the {q.tokens!r} variant but the experiment "
                         f"writes {tokens!r}; use the question for that variant")
    return qid


def site_order(site: str) -> tuple[int, int]:
    """A site's place in forward order on FLUX.2-style numbering: ``embed``, the double blocks, the single blocks."""
    if site == "embed":
        return (0, 0)
    kind, _, index = site.partition(".")
    return (1 if kind == "double" else 2, int(index))


def _transition(raw: Any, exp: Experiment, cid: str) -> Transition:
    """The optional ``transition`` table of a sweep claim, validated (module docstring of
    :mod:`mechinterp.stats.transition` for what it means)."""
    if not isinstance(raw, dict):
        raise ValueError(f"claim {cid!r}: transition must be a table {{ at = <site>, within = <blocks>, "
                         f"holds = \"before\" | \"after\" }}, got {raw!r}")
    unknown = sorted(set(raw) - set(_TRANSITION_KEYS))
    missing = [k for k in _TRANSITION_KEYS if k not in raw]
    if unknown or missing:
        raise ValueError(f"claim {cid!r}: transition keys are {', '.join(_TRANSITION_KEYS)}; "
                         f"unknown {unknown or 'none'}, missing {missing or 'none'}")
    sweep = exp.get("sweep")
    if not sweep:
        raise ValueError(f"claim {cid!r}: a transition needs a sweep (experiment.sweep), to locate a crossing along it")
    at, within, holds = raw["at"], raw["within"], raw["holds"]
    if not isinstance(at, str) or not _SITE.match(at):
        raise ValueError(f"claim {cid!r}: transition at {at!r} is not a site (embed, double.N, single.N)")
    first, last = exp.get(sweep), exp.get(_SWEEP_END)
    if site_order(at) <= site_order(str(first)) or (last and site_order(at) > site_order(str(last))):
        raise ValueError(f"claim {cid!r}: transition at {at!r} must lie after the sweep's first site {first!r}"
                         + (f" and not past its last {last!r}" if last else ""))
    if isinstance(within, bool) or not isinstance(within, int) or within < 0:
        raise ValueError(f"claim {cid!r}: transition within {within!r} must be a whole number of blocks >= 0")
    from mechinterp.stats.transition import SIDES

    if holds not in SIDES:
        raise ValueError(f"claim {cid!r}: transition holds {holds!r} is not one of {', '.join(SIDES)} "
                         f"(the side of the crossing on which the per-site hypothesis holds)")
    return Transition(at, within, holds)


def _cell_claim(raw: dict, cid: str) -> dict:
    family = _choice(raw.get("family"), FAMILIES, "family", cid)
    tasks = tuple(_choice(t, TASK_FAMILIES, "task family", cid) for t in raw.get("tasks", ()))
    exp = _experiment(raw.get("experiment", {}), cid)
    question = _question(canonical_question(str(raw.get("question", ""))), exp, family, cid, raw.get("polarity"))
    drawn = tasks[0] if tasks else family
    if EXPERIMENTS[exp.name].pairs and drawn not in PAIR_FAMILIES:
        raise ValueError(f"claim {cid!r}: experiment {exp.name!r} runs on pair families; {drawn!r} is not one of "
                         f"{', '.join(PAIR_FAMILIES)}")
    valid = markers()
    marks = tuple(_choice(m, valid, "marker", cid) for m in raw.get("markers", ()))
    for needed in (family, EXPERIMENTS[exp.name].marker):
        if needed not in marks:
            raise ValueError(f"claim {cid!r}: markers {list(marks)} must include {needed!r}")
    paper = PaperValue(**raw["paper"]) if "paper" in raw else None
    transition = _transition(raw["transition"], exp, cid) if "transition" in raw else None
    return dict(family=family, tasks=tasks, experiment=exp, question=question, markers=marks, paper=paper,
                cells=tuple(raw.get("cells", ())), csv=raw.get("csv"), transition=transition)


def _relation_markers(raw: dict, a: Claim, b: Claim, cid: str) -> tuple[str, ...]:
    """A relation's markers: both cells' (default), or the ``markers`` it names — a subset of theirs that
    keeps at least one of its cells' families and every experiment marker both cells carry."""
    both = tuple(dict.fromkeys(a.markers + b.markers))
    if "markers" not in raw:
        return both
    named = raw["markers"]
    if not isinstance(named, list) or not all(isinstance(m, str) for m in named):
        raise ValueError(f"relation {cid!r}: markers must be a list of marker names, got {named!r}")
    extra = [m for m in named if m not in both]
    if extra:
        raise ValueError(f"relation {cid!r}: markers {extra} are not its cells' ({', '.join(both)})")
    families = [f for f in dict.fromkeys((a.family, b.family)) if f is not None]
    if not any(f in named for f in families):
        raise ValueError(f"relation {cid!r}: markers {named} must keep a family of its cells ({' or '.join(families)})")
    shared = [m for m in a.markers if m in b.markers and m not in FAMILIES]
    missing = [m for m in shared if m not in named]
    if missing:
        raise ValueError(f"relation {cid!r}: markers {named} must keep the experiment markers both cells carry: {missing}")
    return tuple(dict.fromkeys(named))


def _power_at(raw: dict, cid: str, hyp: Hypothesis) -> float | None:
    """The optional ``power_at``: a rate in [0, 1] (a difference in [-1, 1] for a relation) inside the claim."""
    if "power_at" not in raw:
        return None
    value, lo = raw["power_at"], (-1.0 if hyp.is_comparison else 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= 1.0:
        raise ValueError(f"claim {cid!r}: power_at {value!r} must be a number in [{lo:g}, 1]")
    edge = abs(value) if hyp.quantity == "|a - b|" else value
    if not hyp.contains(value) or edge == hyp.value:
        raise ValueError(f"claim {cid!r}: power_at {value!r} must satisfy its hypothesis {hyp} away from the threshold")
    return float(value)


def _parse(data: dict, known: dict[str, tuple[Claim, str]] | None = None) -> tuple[list[Claim], list[Table]]:
    """The claims and tables of one file; ``known``: the claims of the registries read before it (id ->
    claim and where it is defined), which its relations may name and its ids may not reuse."""
    known = known or {}
    claims: list[Claim] = []
    by_id: dict[str, Claim] = {}
    for raw in data.get("claim", []):
        cid = str(raw.get("id", ""))
        if not cid or cid in by_id:
            raise ValueError(f"claim id {cid!r} is empty or duplicated")
        hyp = Hypothesis.parse(str(raw.get("hypothesis", "")))
        common = dict(id=cid, statement=str(raw.get("statement", "")), where=str(raw.get("where", "")), hypothesis=hyp,
                      power_at=_power_at(raw, cid, hyp))
        if "a" in raw or "b" in raw:
            a, b = (by_id.get(raw.get(x)) or known.get(raw.get(x), (None,))[0] for x in ("a", "b"))
            if "transition" in raw:
                raise ValueError(f"relation {cid!r}: a transition belongs to a sweep claim, not a relation")
            if a is None or b is None or a.is_relation or b.is_relation:
                raise ValueError(f"relation {cid!r}: a={raw.get('a')!r}, b={raw.get('b')!r} must name earlier cell claims "
                                 f"(of this file{' or the registries read before it' if known else ''})")
            if not hyp.is_comparison:
                raise ValueError(f"relation {cid!r}: hypothesis {hyp} must be about 'a - b' or '|a - b|'")
            if a.id == b.id:
                raise ValueError(f"relation {cid!r}: a and b name the same claim {a.id!r}; a relation compares two cells")
            fam = a.family if a.family == b.family else None
            claim = Claim(**common, family=fam, markers=_relation_markers(raw, a, b, cid), a=a.id, b=b.id,
                          unpaired=a.draws != b.draws)
        else:
            if hyp.is_comparison:
                raise ValueError(f"cell claim {cid!r}: hypothesis {hyp} must be about 'rate'")
            claim = Claim(**common, **_cell_claim(raw, cid))
        if cid in known:  # after its own checks: a claim's own mistakes are named first
            raise ValueError(f"claim id {cid!r} is already defined (in {known[cid][1]}); claim ids must be unique in a run")
        claims.append(claim)
        by_id[cid] = claim
    tables = []
    for raw in data.get("table", []):
        rows = tuple((r["key"], r["label"]) for r in raw["rows"])
        cols = tuple((c["key"], c["label"]) for c in raw["columns"])
        tables.append(Table(raw["id"], raw.get("title", raw["id"]), rows, cols))
    by_table = {t.id: t for t in tables}
    for claim in claims:
        for cell in claim.cells:
            tid, _, rest = cell.partition(":")
            row, _, col = rest.partition(":")
            table = by_table.get(tid)
            if table is None or row not in dict(table.rows) or col not in dict(table.columns):
                raise ValueError(f"claim {claim.id!r}: cell {cell!r} is not <table>:<row>:<column> of a declared table")
            if (row, col) in table.cells:
                raise ValueError(f"cell {cell!r} claimed by both {table.cells[(row, col)]!r} and {claim.id!r}")
            table.cells[(row, col)] = claim.id
    return claims, tables


def _is_claim_file(path: Path) -> bool:
    """A user's claim file (``*.claims.toml``): read after the paper's registry, whose claims it may relate."""
    return path.name.endswith(".claims.toml")


def _where(path: Path) -> str:
    """Where a claim is defined, for errors: the paper's registry by name, any other file by its path."""
    return ("the paper's registry, mechinterp/claims/registry.toml" if path == default_registry_path().resolve()
            else str(path))


def _stamped(path) -> tuple[Path, tuple[int, int]]:
    p = registry_path(path).resolve()
    st = p.stat()
    return p, (st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=32)
def _load(path: Path, stamp: tuple[int, int], base: tuple[tuple[Path, tuple[int, int]], ...] = ()
          ) -> tuple[tuple[Claim, ...], tuple[Table, ...]]:
    """One file's own claims and tables, read after the ``base`` files (each read after those before it)."""
    known: dict[str, tuple[Claim, str]] = {}
    for i, (bp, bstamp) in enumerate(base):
        known.update((c.id, (c, _where(bp))) for c in _load(bp, bstamp, base[:i])[0])
    with open(path, "rb") as fh:
        claims, tables = _parse(tomllib.load(fh), known)
    return tuple(claims), tuple(tables)


def _chain(paths: list) -> list[tuple[Path, tuple[int, int]]]:
    """The files to read, in order, each once: a user claim file with no registry before it is read after
    the paper's (so that its relations may name the shipped claims and its ids may not reuse theirs)."""
    files = list(dict.fromkeys(_stamped(p) for p in paths))
    default = _stamped(default_registry_path())
    if files and _is_claim_file(files[0][0]):
        return [default, *(f for f in files if f != default)]
    return files


def _cached(path, after: tuple = ()) -> tuple[tuple[Claim, ...], tuple[Table, ...]]:
    """Claims and tables of ``path`` (a registry, a user's claim file, or a list of both, pooled in order),
    read after the files ``after``; those, and the paper's registry read only to resolve a claim file's
    relations, are not returned."""
    paths = list(path) if isinstance(path, (list, tuple)) else [path]
    chain, wanted = _chain([*after, *paths]), {_stamped(p) for p in paths}
    claims: list[Claim] = []
    tables: list[Table] = []
    for i, (p, stamp) in enumerate(chain):
        if (p, stamp) in wanted:
            c, t = _load(p, stamp, tuple(chain[:i]))
            claims += c
            tables += [table for table in t if table.id not in {x.id for x in tables}]
    return tuple(claims), tuple(tables)


def load_registry(path: str | Path | list | None = None, after: list | tuple = ()) -> list[Claim]:
    """Load and validate the claims (default: the paper's registry shipped in the package).

    ``path`` may also be a list of registry files (e.g. the project's plus a user's
    ``*.claims.toml``); their claims are pooled in order. A ``*.claims.toml`` file is read after the files
    before it (after the paper's registry when no registry comes first): its relations may name their claims,
    and an id they already define is an error naming where. A lone ``*.claims.toml`` gives its own claims;
    ``after``: files read before ``path`` (e.g. the claim files a run collected earlier), not returned.
    """
    return list(_cached(path, tuple(after))[0])


def load_tables(path: str | Path | None = None) -> list[Table]:
    """Load the paper-table layouts declared in the same registry file."""
    return list(_cached(path)[1])


def claims_by_id(claims: list[Claim]) -> dict[str, Claim]:
    """Index claims by id."""
    return {c.id: c for c in claims}


__all__ = [
    "Claim", "EXPERIMENTS", "Experiment", "FAMILIES", "PaperValue", "Table", "Transition",
    "claims_by_id", "default_registry_path", "load_registry", "load_tables", "registry_path", "site_order",
]
