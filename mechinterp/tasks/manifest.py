"""The shipped manifest of user-supplied reference images, and the check of a data directory.

``manifest.json`` lists every style/human reference file with the upstream URL and
licence of paper Appendix G and the SHA-256 of the authors' released file; SUN397
images, for which no checksum is published, are a collection whose images must have
exactly the size the task list says. ``verify_references`` checks all tasks of a load
at once and raises one error that names every missing or wrong file and where to get it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image

from mechinterp.io import file_sha256
from mechinterp.tasks.records import Task, TaskDataError

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class ManifestEntry:
    """One expected file (or, with ``sha256=None``, one collection) of the data directory."""

    key: str
    path: str
    what: str
    url: str
    licence: str
    sha256: str | None = None
    bytes: int | None = None
    size: tuple[int, int] | None = None  # (width, height) in pixels of the authors' file
    family: str = ""

    def describe(self) -> str:
        """One line naming the entry, where to get it and under which licence."""
        return f"manifest entry {self.what!r}: {self.url} ({self.licence})"


@dataclass(frozen=True)
class Manifest:
    """Lookup of manifest entries by data-dir-relative key (path without suffix) or path."""

    files: dict[str, ManifestEntry]
    collections: tuple[dict, ...]

    def entry_for(self, rel_path: str) -> ManifestEntry | None:
        """The file entry whose key or path is ``rel_path``, if any."""
        return self.files.get(rel_path) or self.files.get(_strip_suffix(rel_path))

    def collection_for(self, rel_path: str) -> dict | None:
        """The collection (e.g. SUN397) a data-dir-relative path belongs to, if any."""
        for coll in self.collections:
            if any(rel_path.startswith(prefix) for prefix in coll["prefixes"]):
                return coll
        return None


def _strip_suffix(rel_path: str) -> str:
    p = Path(rel_path)
    return str(p.with_suffix("")) if p.suffix.lower() in IMAGE_SUFFIXES else rel_path


@lru_cache(maxsize=4)
def load_manifest(path: Path = MANIFEST_PATH) -> Manifest:
    """Read and validate the manifest (cached; it ships with the package)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise TaskDataError(f"cannot read task manifest {str(path)!r}: {err}") from err
    files: dict[str, ManifestEntry] = {}
    for item in raw.get("files", []):
        try:
            entry = ManifestEntry(**{**item, "size": tuple(item["size"])} if "size" in item else item)
        except TypeError as err:
            raise TaskDataError(f"manifest {str(path)!r}: bad file entry {item!r}: {err}") from err
        files[entry.key] = entry
        files[entry.path] = entry
    return Manifest(files=files, collections=tuple(raw.get("collections", [])))


def resolve_reference(data_dir: Path, rel_path: str, manifest: Manifest | None = None) -> Path:
    """The absolute file a task's reference names.

    ``rel_path`` is relative to the data directory and may lack a suffix (the authors
    name style references by stem): the manifest's file wins, then any existing
    ``.png``/``.jpg``/``.jpeg``; if none exists the manifest's (or ``.png``) path is
    returned so that verification can report it as missing.
    """
    manifest = manifest or load_manifest()
    entry = manifest.entry_for(rel_path)
    if entry is not None:
        return data_dir / entry.path
    if Path(rel_path).suffix.lower() in IMAGE_SUFFIXES:
        return data_dir / rel_path
    for suffix in IMAGE_SUFFIXES:
        candidate = data_dir / (rel_path + suffix)
        if candidate.is_file():
            return candidate
    return data_dir / (rel_path + ".png")


def _problem(task: Task, path: Path, data_dir: Path, manifest: Manifest) -> str | None:
    """Why a task's reference file is unusable, or None when it is fine."""
    rel = path.relative_to(data_dir).as_posix() if path.is_relative_to(data_dir) else str(path)
    entry = manifest.entry_for(rel)
    coll = None if entry else manifest.collection_for(rel)
    if entry:
        source = entry.describe()
    elif coll:
        meta = task.metadata
        detail = f", category {meta['sun397_category']} file {meta['sun397_src_filename']}" if "sun397_category" in meta else ""
        source = f"manifest collection {coll['name']!r}{detail}: {coll['url']} ({coll['licence']})"
    else:
        source = f"no manifest entry; named by task {task.task_id!r}"
    if not path.is_file():
        return f"missing  {rel}  ({source})"
    if entry and entry.sha256:
        digest = file_sha256(path)
        if digest != entry.sha256:
            return f"checksum {rel}  sha256 {digest[:16]}… but the manifest expects {entry.sha256[:16]}… ({source})"
    elif coll:
        try:
            with Image.open(path) as im:
                size = im.size
        except Exception as err:  # PIL raises several types for corrupt files
            return f"unreadable {rel}: {err} ({source})"
        if size != (task.width, task.height):
            return (
                f"size     {rel}  is {size[0]}x{size[1]} but task {task.task_id!r} expects "
                f"{task.width}x{task.height} ({source})"
            )
    return None


def verify_references(tasks: list[Task], data_dir: Path, family: str, manifest: Manifest | None = None) -> None:
    """Check every file reference of ``tasks``; raise one error listing all problems.

    A file is wrong when it is missing, when its SHA-256 differs from the manifest, or
    (for collections without checksums) when its size differs from the task's size.
    ``manifest`` defaults to the shipped one.
    """
    manifest = manifest or load_manifest()
    problems: dict[Path, str] = {}
    for task in tasks:
        if isinstance(task.reference, Path) and task.reference not in problems:
            problems[task.reference] = _problem(task, task.reference, data_dir, manifest) or ""
    bad = [p for p in problems.values() if p]
    if bad:
        shown = "\n  ".join(bad)
        raise TaskDataError(
            f"family {family!r}: {len(bad)} of {len(problems)} reference images under data dir "
            f"{str(data_dir)!r} are missing or wrong:\n  {shown}\n"
            "See docs/data-dir.md for the layout and where to get each file."
        )
