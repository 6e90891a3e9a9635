"""A run folder's settings record: the settings that shape its rows, and the refusal to mix runs.

Why: a run folder pools every verdict row found in it. Rows made with other settings (another
``--samples`` cap, seed, model, judge, judge config, data dir, noise device, dtype or device) would
silently join the new run's counts, so the first claim process of a run records those settings in
``<run>/parts/settings.json`` and a run that finds a folder recorded with different ones is
refused before anything runs, naming each difference (reruns with the same settings resume).
The record also names the ``--mi-shard`` the folder holds (``"I/N"``, or ``null``): it shapes no row,
but a folder holds one shard, and ``finish_run`` writes it into ``run.json`` so ``mechinterp merge``
can check that every shard of a sharded run is there.

What identifies the inputs: the judge by its verdict settings (``JudgeConfig.verdict_settings``: the
Claude model id, reply length, re-asks), the data dir by its resolved path and a digest of its task
and pair lists (``tasks.authors.task_lists_digest``; a moved copy is another data dir: use a new folder),
and each model by its fingerprint (``gencache.model_fingerprint``: its files' content, wiring, dtype,
device type, torch/diffusers versions), keyed by the model as asked for. A path names a model, its
fingerprint is the model: weights replaced at the same path are another model. The fingerprint is known
once the model is loaded, so it is recorded (and checked) by :func:`record_fingerprint` when a process
loads it, before any claim runs on it. A folder recorded by an older mechinterp, without these, is
refused when it holds verdict rows (they cannot be checked) and taken over when it holds none.
"""

from __future__ import annotations

import json
from pathlib import Path

from mechinterp.io import atomic_write, file_lock
from mechinterp.suite import PARTS
from mechinterp.resources import DEFAULT_ORGANISM
from mechinterp.suite.settings import Settings

SETTINGS_FILE = "settings.json"
#: the settings a verdict row depends on (everything else - budget, shard, progress, caches - does not)
SHAPING = ("model", "judge", "seed", "samples", "generator", "dtype", "device", "judge_config", "data_dir")
#: the record's key of the models' fingerprints, ``{model as asked for: fingerprint}``
FINGERPRINTS = "fingerprints"
#: what a record of an older mechinterp lacks (its rows cannot be checked against them)
NEWER = ("judge_config", "data_dir", FINGERPRINTS)


def data_dir_record(data_dir: Path | None) -> dict | None:
    """The data dir as the record identifies it: its resolved path and the digest of its task lists."""
    if data_dir is None:
        return None
    from mechinterp.tasks.authors import task_lists_digest

    path = Path(data_dir).expanduser().resolve()
    return {"path": str(path), "task_lists": task_lists_digest(path) if path.is_dir() else None}


def shaping_settings(settings: Settings) -> dict:
    """The :data:`SHAPING` settings as plain JSON values."""
    from mechinterp.judges.config import JudgeConfig

    values = {name: getattr(settings, name) for name in SHAPING}
    values["model"] = values["model"] or DEFAULT_ORGANISM
    values["judge_config"] = (settings.judge_config or JudgeConfig()).verdict_settings()
    values["data_dir"] = data_dir_record(settings.data_dir)
    return values


def folder_settings(settings: Settings) -> dict:
    """What a run folder records of its settings: :func:`shaping_settings` and the shard (``"I/N"`` or ``None``)."""
    shard = None if settings.shard is None else "{}/{}".format(*settings.shard)
    return {**shaping_settings(settings), "shard": shard}


def _record_path(run_dir: Path) -> Path:
    return Path(run_dir) / PARTS / SETTINGS_FILE


def recorded_shard(run_dir: Path) -> str | None:
    """The ``--mi-shard`` (``"I/N"``) a run folder's settings record names; ``None``: the whole selection
    (or no record)."""
    record = _record_path(run_dir)
    if not record.is_file():
        return None
    return json.loads(record.read_text(encoding="utf-8")).get("shard")


def _recorded(run_dir: Path) -> dict | None:
    """The settings a run folder was made with: its record, or what ``run.json`` says of them."""
    record = _record_path(run_dir)
    if record.is_file():
        return json.loads(record.read_text(encoding="utf-8"))
    meta = run_dir / "run.json"
    if meta.is_file():
        data = json.loads(meta.read_text(encoding="utf-8"))
        return {k: data.get(k) for k in ("model", "judge", "seed", "samples")}
    return None


def _show(value) -> str:
    """A recorded value as an error shows it: ``unset``, a repr, or a record as sorted JSON."""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return "unset" if value is None else repr(value)


def _flag(name: str) -> str:
    return "--mi-" + name.replace("_", "-")


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
    rows = any((run_dir / PARTS).glob("*.jsonl"))
    if recorded is None:
        if rows:
            raise ValueError(f"--mi-report {run_dir}: holds verdict rows of a run whose settings are not recorded; "
                             "use a new --mi-report folder so they are not pooled with this run's")
        return
    unknown = [name for name in NEWER if name not in recorded]
    if unknown and rows:
        raise ValueError(f"--mi-report {run_dir}: holds verdict rows recorded by an older mechinterp without their "
                         f"{', '.join(n.replace('_', ' ') for n in unknown)}, which cannot be checked against this "
                         "run's; use a new --mi-report folder")
    now = folder_settings(settings)
    diffs = [f"{_flag(name)} {_show(recorded[name])} there, {_show(now[name])} now" for name in now
             if name in recorded and recorded[name] != now[name]]
    if diffs:
        raise ValueError(f"--mi-report {run_dir}: holds a run made with other settings ({'; '.join(diffs)}); "
                         "its rows would be pooled with this run's: use a new --mi-report folder (or the same settings)")


def record_settings(run_dir: Path, settings: Settings) -> Path:
    """Write the run's :func:`folder_settings` into its folder (atomically, under the record's lock; the same
    content from every worker), keeping the fingerprints recorded so far."""
    path = _record_path(run_dir)
    with file_lock(path.with_suffix(".lock")):
        old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        atomic_write(path, json.dumps({**folder_settings(settings), FINGERPRINTS: old.get(FINGERPRINTS, {})},
                                      sort_keys=True))
    return path


def record_fingerprint(run_dir: Path, model: str, fingerprint: str) -> None:
    """Record ``fingerprint`` as the run's model ``model`` (as asked for: an organism name, a folder or a
    hub id), or ``ValueError`` naming both when the folder's rows were made with another model of that
    name (replaced weights, another wiring, dtype, device type or torch/diffusers version). Called when
    a process loads the model, before any claim runs on it; under the record's lock (workers race)."""
    path = _record_path(run_dir)
    with file_lock(path.with_suffix(".lock")):
        record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        known = record.setdefault(FINGERPRINTS, {})
        there = known.get(model)
        if there is not None and there != fingerprint:
            raise ValueError(f"--mi-report {run_dir}: holds rows of another model at --mi-model {model!r} (model "
                             f"fingerprint {there} there, {fingerprint} now: its files, wiring, dtype, device type "
                             "or torch/diffusers versions changed); its rows would be pooled with this run's: "
                             "use a new --mi-report folder (or the same model)")
        if there is None:
            known[model] = fingerprint
            atomic_write(path, json.dumps(record, sort_keys=True))
