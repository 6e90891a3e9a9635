"""What the collected claims need that this machine or model lacks, and so which claims the run will skip.

Without this each claim finds out on its own, one skip at a time, and a CI job goes green having
decided nothing. :func:`skipped_claims` asks, before any claim runs, the runner's own questions of
every collected claim (a relation: of both its cells) without generating anything: can its task
family be drawn (the data dir), does a judge answer its question (``--mi-judge``, the API key), is
each of its sites on the model it runs on, do a relation's cells pair as it says. Every claim the
run will skip is named under every reason it will be skipped for; :func:`describe` prints them as
one message, and under ``--mi-strict`` the run stops on it.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from mechinterp.suite.settings import Settings, judge_kind
from mechinterp.tasks.families import data_dir_or_env

_DATA, _JUDGE, _KEY = "data", "judge", "key"  # the reasons shared by many claims; a site's is its own message


@dataclass(frozen=True)
class Gap:
    """One missing prerequisite: what is missing (and what to set) and the collected claims skipped for it."""

    reason: str
    claims: tuple[str, ...]

    def line(self, ids: bool = True) -> str:
        """``<reason> for N claims: <every id>`` (``ids=False``: the count only)."""
        count = f"{self.reason} for {len(self.claims)} claim{'s' * (len(self.claims) != 1)}"
        return f"{count}: {', '.join(self.claims)}" if ids else count


def model_tasks(settings: Settings, family: str | None) -> dict[str, str]:
    """The ``tasks`` map of the model a claim of ``family`` runs on (its mechinterp.json, read without
    loading it; ``{}`` for a model that is not a local folder)."""
    from mechinterp.engine.meta import ModelMeta
    from mechinterp.resources import default_model
    from mechinterp.suite.models import resolve_model

    try:
        path = Path(resolve_model(settings.model or default_model(family)))
    except ValueError:
        return {}
    return dict(ModelMeta.read(path).tasks) if path.is_dir() else {}


def outline_runner(spec: str, outlines: dict):
    """A :class:`~mechinterp.suite.runner.ClaimRunner` over model ``spec``'s files only (its site table and
    mechinterp.json, not its weights), to ask the runner's site questions before anything loads; ``None``
    when the model is not on this machine (its load says why). ``outlines`` memoises per spec."""
    if spec not in outlines:
        from mechinterp.suite.models import model_outline
        from mechinterp.suite.runner import ClaimRunner

        outline = model_outline(spec)
        if outline is None:
            outlines[spec] = None
        else:
            class _Outline:  # what ClaimRunner's site mapping reads of a model
                model_id = spec
                table, meta = outline

            outlines[spec] = ClaimRunner(_Outline(), judge_for=None)
    return outlines[spec]


@dataclass
class _Check:
    """The runner's questions, asked of cells without running them; answers memoised per cell."""

    settings: Settings
    outlines: dict = field(default_factory=dict)
    tasks: dict = field(default_factory=dict)  # family -> the model's task map
    items: dict = field(default_factory=dict)  # cell id -> its items, or the runner's skip message
    gaps: dict = field(default_factory=dict)  # cell id -> [(reason key, detail)]
    key: bool | None = None  # the API key's presence, asked once and only when a claim needs the Anthropic judge

    def task_map(self, family):
        if family not in self.tasks:
            self.tasks[family] = model_tasks(self.settings, family)
        return self.tasks[family]

    def cell_items(self, cell):
        """The cell's items as the runner draws them, or the runner's message when it cannot."""
        from mechinterp.claims.draws import claim_items, drawn_family

        if cell.id not in self.items:
            tasks = self.task_map(cell.family)
            try:
                self.items[cell.id] = claim_items(cell, self.settings.data_dir, tasks=tasks)
            except (FileNotFoundError, ValueError) as err:  # the runner's own catch (ClaimRunner.items)
                self.items[cell.id] = f"task family {drawn_family(cell, tasks)[0]!r} is not available: {err}"
        return self.items[cell.id]

    def cell_gaps(self, cell) -> list[tuple[str, str]]:
        """Every reason the runner will skip ``cell`` for: ``(key, detail)``."""
        if cell.id in self.gaps:
            return self.gaps[cell.id]
        from mechinterp.claims.draws import drawn_family
        from mechinterp.resources import default_model
        from mechinterp.suite.runner import ClaimSkipped

        out = []
        runner = outline_runner(self.settings.model or default_model(cell.family), self.outlines)
        if runner is not None:
            try:
                runner.check_sites(cell)
            except ClaimSkipped as err:
                out.append(("site", str(err)))
            except ValueError:
                pass  # a typo of a user's claim file: a collection error already
        if isinstance(self.cell_items(cell), str):
            out.append((_DATA, drawn_family(cell, self.task_map(cell.family))[0]))
        glyph = self.task_map(cell.family).get("human") == "glyph"  # the glyph judge answers identity there
        kind = judge_kind(self.settings.judge, cell.question, glyph)
        if kind is None:
            out.append((_JUDGE, ""))
        elif kind in ("anthropic", "anthropic-batch") and not self.api_key():
            out.append((_KEY, ""))
        self.gaps[cell.id] = out
        return out

    def api_key(self) -> bool:
        if self.key is None:
            self.key = _has_api_key()
        return self.key

    def claim_gaps(self, claim, registry: dict) -> list[tuple[str, str]]:
        """Every reason the runner will skip ``claim`` for (a relation: its cells', then its own pairing)."""
        from mechinterp.suite.runner import item_id

        if not claim.is_relation:
            return self.cell_gaps(claim)
        missing = [c for c in (claim.a, claim.b) if c not in registry]
        if missing:
            return [("relation", f"relation {claim.id!r} refers to unknown claims {missing}")]
        a, b = registry[claim.a], registry[claim.b]
        out = list(dict.fromkeys(self.cell_gaps(a) + self.cell_gaps(b)))
        items_a, items_b = self.cell_items(a), self.cell_items(b)
        if not isinstance(items_a, str) and not isinstance(items_b, str):  # the runner's pairing (_run_relation)
            shared = {item_id(it) for it in items_a} & {item_id(it) for it in items_b}
            if claim.unpaired and shared:
                out.append(("relation", f"relation {claim.id!r} is unpaired, but on this model its cells {a.id!r} "
                                        f"and {b.id!r} draw the same tasks ({len(shared)} shared)"))
            elif not claim.unpaired and not shared:
                out.append(("relation", f"relation {claim.id!r}: its cells {a.id!r} and {b.id!r} share no tasks to pair"))
        return out


def skipped_claims(claims, registry: dict, settings: Settings) -> list[Gap]:
    """Every missing prerequisite of ``claims`` with the claims (of ``claims``, in their order) the run will
    skip for it; a claim lacking several is under each. Empty when every claim can run."""
    check = _Check(settings)
    by_reason: dict[tuple[str, str], list[str]] = {}
    for claim in dict.fromkeys(claims):
        for gap in check.claim_gaps(claim, registry):
            by_reason.setdefault(gap, []).append(claim.id)
    families = sorted({family for key, family in by_reason if key == _DATA})
    out = _data_gaps(settings, families, by_reason, check) if families else []
    if (_JUDGE, "") in by_reason:
        out.append(Gap("--mi-judge color answers only colour (and, on the identity organisms, identity) questions: "
                       "--mi-judge anthropic is needed", tuple(by_reason[(_JUDGE, "")])))
    if (_KEY, "") in by_reason:
        out.append(Gap("ANTHROPIC_API_KEY is not set (or use --mi-judge color for colour claims); the Anthropic "
                       "judge needs it", tuple(by_reason[(_KEY, "")])))
    out += [Gap(detail, tuple(ids)) for (key, detail), ids in by_reason.items() if key not in (_DATA, _JUDGE, _KEY)]
    return out


def _data_gaps(settings: Settings, families: list[str], by_reason: dict, check: _Check) -> list[Gap]:
    """The data dir's gaps: one when there is none (or it is no folder), else one per family it cannot give
    (the runner's own message: a missing task list, a reference that fails its manifest)."""
    where = data_dir_or_env(settings.data_dir)
    ids = tuple(dict.fromkeys(cid for (key, _), got in by_reason.items() if key == _DATA for cid in got))
    if where is None:
        return [Gap(f"data dir: the task families {', '.join(families)} need one (--mi-data-dir or "
                    f"$MECHINTERP_DATA_DIR; docs/data-dir.md)", ids)]
    if not Path(where).is_dir():
        return [Gap(f"data dir {str(where)!r} does not exist or is not a directory; the task families "
                    f"{', '.join(families)} need it", ids)]
    messages = [got for got in check.items.values() if isinstance(got, str)]  # the runner's, one per cell
    return [Gap(next(m for m in messages if m.startswith(f"task family {family!r} ")), tuple(by_reason[(_DATA, family)]))
            for family in families]


def missing_prerequisites(claims, registry: dict, settings: Settings) -> list[str]:
    """One line per missing prerequisite of ``claims`` (:func:`skipped_claims`), naming what to set and every
    claim skipped for it; empty when everything is there."""
    return [gap.line() for gap in skipped_claims(claims, registry, settings)]


def _has_api_key() -> bool:
    """The session's own key check (``ANTHROPIC_AUTH_TOKEN`` alone does not authenticate)."""
    from mechinterp.judges.client import has_api_key  # here, and only when a claim needs it: a colour-only run
    # never imports the judge SDK (2-3 s of the main job's start)

    return has_api_key()


def describe(gaps: list[Gap], total: int | None = None, strict: bool = False, compact: bool = False) -> str:
    """The one message: every missing prerequisite with every claim it skips (ids wrapped; ``compact``, as
    under ``-q``: counts only), and how many of the ``total`` collected claims that is (``strict``: they fail
    the run instead)."""
    fate = "fail under --mi-strict" if strict else "are skipped"
    skipped = len({cid for gap in gaps for cid in gap.claims})
    of = f"{skipped} of {total}" if total is not None else str(skipped)
    lines = [f"mechinterp: missing prerequisites (the claims that need them {fate}): {of} claims"]
    for gap in gaps:
        lines.append(textwrap.fill(gap.line(ids=not compact), 110, initial_indent="  - ", subsequent_indent="      ",
                                   break_on_hyphens=False, break_long_words=False))
    return "\n".join(lines)
