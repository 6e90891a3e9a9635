"""A run folder's settings record: the settings that shape its rows, and the refusal to mix runs.

Why: a run folder pools every verdict row found in it. Rows made with other settings (another
``--samples`` cap, seed, model, judge, noise device, dtype or device) would silently join the new
run's counts, so the first claim process of a run records those settings in
``<run>/parts/settings.json`` and a run that finds a folder recorded with different ones is
refused before anything runs, naming each difference (reruns with the same settings resume).
The record also names the ``--mi-shard`` the folder holds (``"I/N"``, or ``null``): it shapes no row,
but a folder holds one shard, and ``finish_run`` writes it into ``run.json`` so ``mechinterp merge``
can check that every shard of a sharded run is there.
"""

from __future__ import annotations

import json
from pathlib import Path

from mechinterp.io import atomic_write
from mechinterp.suite import PARTS
from mechinterp.resources import DEFAULT_ORGANISM
from mechinterp.suite.settings import Settings

SETTINGS_FILE = "settings.json"
#: the settings a verdict row depends on (everything else - budget, shard, progress, caches - does not)
SHAPING = ("model", "judge", "seed", "samples", "generator", "dtype", "device")


def shaping_settings(settings: Settings) -> dict:
    """The :data:`SHAPING` settings as plain JSON values."""
    values = {name: getattr(settings, name) for name in SHAPING}
    values["model"] = values["model"] or DEFAULT_ORGANISM
    return values


def folder_settings(settings: Settings) -> dict:
    """What a run folder records of its settings: :func:`shaping_settings` and the shard (``"I/N"`` or ``None``)."""
    shard = None if settings.shard is None else "{}/{}".format(*settings.shard)
    return {**shaping_settings(settings), "shard": shard}


def recorded_shard(run_dir: Path) -> str | None:
    """The ``--mi-shard`` (``"I/N"``) a run folder's settings record names; ``None``: the whole selection
    (or no record)."""
    record = run_dir / PARTS / SETTINGS_FILE
    if not record.is_file():
        return None
    return json.loads(record.read_text(encoding="utf-8")).get("shard")


def _recorded(run_dir: Path) -> dict | None:
    """The settings a run folder was made with: its record, or what ``run.json`` says of them."""
    record = run_dir / PARTS / SETTINGS_FILE
    if record.is_file():
        return json.loads(record.read_text(encoding="utf-8"))
    meta = run_dir / "run.json"
    if meta.is_file():
        data = json.loads(meta.read_text(encoding="utf-8"))
        return {k: data.get(k) for k in ("model", "judge", "seed", "samples")}
    return None


def check_run_folder(run_dir: Path, settings: Settings) -> None:
    """``ValueError`` when ``run_dir`` cannot be this run's folder: it is a file, or it holds a run
    made with other shaping settings (or rows whose settings are unknown)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"--mi-report {run_dir}: is a file; expected a run folder (a new or an existing one)")
    if not run_dir.is_dir():
        return
    try:
        recorded = _recorded(run_dir)
    except (OSError, ValueError) as err:
        raise ValueError(f"--mi-report {run_dir}: its settings record cannot be read ({err}); "
                         "use a new --mi-report folder") from None
    if recorded is None:
        if any((run_dir / PARTS).glob("*.jsonl")):
            raise ValueError(f"--mi-report {run_dir}: holds verdict rows of a run whose settings are not recorded; "
                             "use a new --mi-report folder so they are not pooled with this run's")
        return
    now = folder_settings(settings)
    def show(v):
        return "unset" if v is None else repr(v)

    diffs = [f"--mi-{name} {show(recorded[name])} there, {show(now[name])} now" for name in now
             if name in recorded and recorded[name] != now[name]]
    if diffs:
        raise ValueError(f"--mi-report {run_dir}: holds a run made with other settings ({'; '.join(diffs)}); "
                         "its rows would be pooled with this run's: use a new --mi-report folder (or the same settings)")


def record_settings(run_dir: Path, settings: Settings) -> Path:
    """Write the run's :func:`folder_settings` into its folder (atomically; the same content from every worker)."""
    path = run_dir / PARTS / SETTINGS_FILE
    atomic_write(path, json.dumps(folder_settings(settings), sort_keys=True))
    return path
