"""What the collected claims need that this machine lacks: the data dir, the judge's API key.

Without this each claim finds out on its own, one skip at a time, and a CI job goes green having
decided nothing. :func:`missing_prerequisites` lists every missing prerequisite once, with the
claims that need it, before any claim runs; under ``--mi-strict`` the run stops on it.
"""

from __future__ import annotations

from pathlib import Path

from mechinterp.suite.settings import Settings, judge_kind
from mechinterp.tasks.families import data_dir_or_env


def _cells(claims, registry: dict) -> list:
    """The cell claims behind ``claims`` (a relation's two cells, a cell itself), each once."""
    out: dict[str, object] = {}
    for c in claims:
        for cell in ((registry.get(c.a), registry.get(c.b)) if c.is_relation else (c,)):
            if cell is not None:
                out.setdefault(cell.id, cell)
    return list(out.values())


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


def _needs_data(cell, tasks: dict[str, str] | None = None) -> str | None:
    """The task family a cell reads from the data dir, or ``None`` when its tasks ship with the project
    (``tasks``: the model's map from a claim's task family to the one that stands for it there)."""
    from mechinterp.claims.draws import drawn_family
    from mechinterp.tasks import FAMILIES, PAIR_FAMILIES

    family, pairs = drawn_family(cell, tasks)  # what the runner draws from (the table says which kinds run on pairs)
    info = (PAIR_FAMILIES if pairs else FAMILIES).get(family)
    return family if info is not None and info.needs != "in-project" else None


def _needs_key(cell, judge: str, tasks: dict[str, str] | None = None) -> bool:
    """Whether ``--mi-judge judge`` answers this cell's question with the Anthropic judge."""
    return judge_kind(judge, cell.question, _glyph(tasks)) in ("anthropic", "anthropic-batch")


def _glyph(tasks: dict[str, str] | None) -> bool:
    """Whether the glyph family stands for ``human`` on the model (the glyph judge answers identity)."""
    return (tasks or {}).get("human") == "glyph"


def _names(ids: list[str], limit: int = 4) -> str:
    shown = ", ".join(ids[:limit])
    return f"{shown} and {len(ids) - limit} more" if len(ids) > limit else shown


def missing_prerequisites(claims, registry: dict, settings: Settings) -> list[str]:
    """One line per missing prerequisite of ``claims`` (data dir, Anthropic key, a judge that cannot answer),
    naming what to set and the claims that need it; empty when everything is there."""
    cells = _cells(claims, registry)
    maps: dict[str | None, dict[str, str]] = {}
    tasks = lambda c: maps.setdefault(c.family, model_tasks(settings, c.family))  # noqa: E731
    out = []
    data = [(c.id, f) for c in cells if (f := _needs_data(c, tasks(c)))]
    if data:
        families = sorted({f for _, f in data})
        ids = [cid for cid, _ in data]
        where = data_dir_or_env(settings.data_dir)
        if where is None:
            out.append(f"data dir: the task families {', '.join(families)} need one (--mi-data-dir or "
                       f"$MECHINTERP_DATA_DIR; docs/data-dir.md), for {len(ids)} claims: {_names(ids)}")
        elif not Path(where).is_dir():
            out.append(f"data dir {str(where)!r} does not exist or is not a directory; the task families "
                       f"{', '.join(families)} need it, for {len(ids)} claims: {_names(ids)}")
    wrong = [c.id for c in cells if judge_kind(settings.judge, c.question, _glyph(tasks(c))) is None]
    if wrong:
        out.append(f"--mi-judge color answers only colour questions; {len(wrong)} claims need --mi-judge "
                   f"anthropic: {_names(wrong)}")
    keyed = [c.id for c in cells if _needs_key(c, settings.judge, tasks(c))]
    if keyed and not _has_api_key():  # the session's own check: ANTHROPIC_AUTH_TOKEN alone does not authenticate
        out.append(f"ANTHROPIC_API_KEY is not set; the Anthropic judge needs it for {len(keyed)} claims: "
                   f"{_names(keyed)} (or --mi-judge color for colour claims)")
    return out


def _has_api_key() -> bool:
    from mechinterp.judges.client import has_api_key  # here, and only when a claim needs it: a colour-only run
    # never imports the judge SDK (2-3 s of the main job's start)

    return has_api_key()


def describe(missing: list[str], strict: bool = False) -> str:
    """The one message: every missing prerequisite, one per line (``strict``: they fail the run)."""
    fate = "fail under --mi-strict" if strict else "are skipped"
    return f"mechinterp: missing prerequisites (the claims that need them {fate}):\n" + "\n".join(
        f"  - {line}" for line in missing)
