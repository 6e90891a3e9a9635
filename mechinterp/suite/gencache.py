"""Content-addressed generation cache shared by every claim, worker and rerun.

A generation's key hashes everything that determines it: the model fingerprint (the model by
content, wiring, dtype, device type, library versions), the sampling (noise device type,
guidance), the edit, the interventions and the captures asked for. Each entry is the float image
array (``array.npy``, plus ``captures.safetensors`` when captures were asked for) and a JSON record,
written to temporary files and moved into place with ``os.replace``; the JSON goes last, carries the
SHA-256 of every payload file and marks the entry complete, so a run killed with ``kill -9`` leaves
either a whole entry or none, a restarted run redoes nothing it finished, and a damaged entry
(a power cut can leave renamed files without their bytes: nothing is fsynced, the digests catch
it; a record whose key is not its folder's, e.g. two entry folders swapped, and a stored array or capture
that is not finite count as damage too) is reported with its path and reason, deleted and recomputed, never
used. A freshly computed generation whose array or captures are not finite is refused (``ValueError``
naming the request), never stored: a NaN image would be judged like any other, and stored it would
poison every later run. The image is not stored: it is the array
rendered as the pipeline renders it (``engine.generation.render``), so it costs no PNG encoding per generation. A per-key lease
(an OS file lock) makes concurrent runs and workers compute each generation once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from mechinterp.io import atomic_write, report_damage
from mechinterp.engine.interventions import Capture, Captures, interventions_key
from mechinterp.engine.generation import Generation, as_capture, render
from mechinterp.engine.model import Model

log = logging.getLogger(__name__)


def model_fingerprint(model: Model) -> str:
    """A stable hash of what makes one model's generations differ from another's: the model by
    content (``Model.identity``: hub commit, folder files or tensors), its wiring, text length and
    encoder layers, dtype, device type and the torch/diffusers versions."""
    import diffusers

    h = hashlib.sha256(model.identity.encode())
    h.update(json.dumps([k.to_dict() for k in model.wiring]).encode())
    h.update(f"{model.dtype}|{model.device.type}|{model.text_len}|{list(model.text_encoder_out_layers)}".encode())
    h.update(f"{torch.__version__}|{diffusers.__version__}".encode())
    return h.hexdigest()[:32]


class GenerationCache:
    """Generations stored by content key under ``root`` (safe for concurrent xdist workers and runs).

    Every entry's ``record.json`` carries the SHA-256 of each payload file; :meth:`get` verifies
    them, so a truncated, bit-flipped or swapped file is never used. :meth:`lease` is a per-key
    ``flock`` that the OS drops when its holder exits (also on ``kill -9``): whoever holds it
    computes the generation, the others wait and then read it, so concurrent runs on one cache
    compute each generation once and a rerun after a kill never waits for a dead owner.
    """

    FILES = ("image.png", "array.npy", "captures.safetensors")  #: image.png: in entries of earlier versions (verified, not read)

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root) / "generations"
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0
        self.damaged: list[dict] = []  #: ``{"path", "reason"}`` of each damaged entry found (reported, deleted, recomputed)

    @property
    def rejected(self) -> int:
        """How many damaged entries this object found (reported, deleted and recomputed)."""
        return len(self.damaged)

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    @contextlib.contextmanager
    def lease(self, key: str, wait: bool = True) -> Iterator[bool]:
        """Hold the lease on ``key`` (an exclusive ``flock`` on ``<key>.lock``, released by the OS
        when this process dies). Yields ``True`` once held; with ``wait=False`` yields ``False``
        at once when another process holds it."""
        path = self.root / key[:2] / f"{key}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def get(self, key: str, repair: bool = False) -> dict | None:
        """The stored record for ``key`` with its image, float array (and captures), or ``None``.

        A damaged entry (unreadable record, a record of another key, missing file, digest mismatch,
        undecodable or non-finite payload) is a miss; with ``repair`` (called under the key's lease) it
        is also reported once with its path and reason (:attr:`damaged`) and deleted, so the caller
        recomputes it."""
        folder = self._dir(key)
        if not (folder / "record.json").exists():
            return None
        try:
            return self._read(folder, key)
        except Exception as err:  # noqa: BLE001 - any damage means: recompute, never crash the claim
            if repair:
                report_damage(log, self.damaged, folder, f"generation cache: {type(err).__name__}: {err}",
                              "deleted, it will be recomputed")
                shutil.rmtree(folder, ignore_errors=True)
            return None

    def _read(self, folder: Path, key: str) -> dict:
        record = json.loads((folder / "record.json").read_text())
        if not isinstance(record, dict) or record.get("key") != key:
            found = record.get("key") if isinstance(record, dict) else None
            raise ValueError(f"record.json holds the entry of key {str(found)[:16]!r}…, "
                             f"not of its folder's key {key[:16]}…")
        digests = record.get("digests")
        if not isinstance(digests, dict) or "array.npy" not in digests:
            raise ValueError("no payload digests in record.json (written by an older mechinterp)")
        payload = {}
        for name, want in digests.items():
            if name not in self.FILES:
                raise ValueError(f"unknown payload file {name!r} in record.json")
            data = (folder / name).read_bytes()
            got = hashlib.sha256(data).hexdigest()
            if got != want:
                raise ValueError(f"{name} does not match its digest ({len(data)} bytes, sha256 {got[:12]}…, "
                                 f"recorded {str(want)[:12]}…)")
            payload[name] = data
        record["array"] = np.load(io.BytesIO(payload["array.npy"]))
        if record["array"].ndim != 3 or record["array"].shape[-1] != 3:
            raise ValueError(f"array.npy holds {record['array'].shape} {record['array'].dtype} values, expected (h, w, 3)")
        if not np.isfinite(record["array"]).all():
            raise ValueError(f"array.npy holds {int((~np.isfinite(record['array'])).sum())} non-finite values")
        record["image"] = render(record["array"])
        if record.get("captures"):
            from safetensors.torch import load as load_tensors

            record["captures_tensors"] = load_tensors(payload["captures.safetensors"])
            bad = _non_finite(record["captures_tensors"])
            if bad:
                raise ValueError(f"captures.safetensors holds non-finite values in {bad}")
        return record

    def put(self, key: str, generation: Generation, meta: dict | None = None) -> None:
        """Store a generation (float array, captures) atomically, with the digest of each file.

        ``ValueError`` when its image is not its array rendered (``render``): only the array is
        stored, and a hit must give back the image that was put; and when its array or a capture is
        not finite (named with the request), which would be judged as an image and poison later runs."""
        from safetensors.torch import save as save_tensors

        _check_finite(key, generation)
        if generation.image.tobytes() != render(generation.array).tobytes():
            raise ValueError("generation cache: the image is not the rendering of its array "
                             "(cached generations store the array and render the image from it)")
        folder = self._dir(key)
        folder.mkdir(parents=True, exist_ok=True)
        files = {"array.npy": _npy_bytes(generation.array)}
        caps = {}
        for (site, step), t in generation.captures.items():
            caps[f"{site}|{step}"] = t.detach().cpu().clone()
            caps[f"{site}|{step}|pos"] = generation.captures.positions[(site, step)].cpu().clone()
        if caps:
            files["captures.safetensors"] = save_tensors(caps)
        for name, data in files.items():
            atomic_write(folder / name, data)
        digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
        record = {"key": key, "captures": bool(caps), "digests": digests, **(meta or {})}
        atomic_write(folder / "record.json", json.dumps(record, sort_keys=True, default=str))

    def array(self, key: str) -> np.ndarray | None:
        """The float image array stored with ``key`` (verified), or ``None``."""
        hit = self.get(key)
        return None if hit is None else hit["array"]


def _non_finite(tensors: dict) -> list[str]:
    """The names of the floating-point tensors in ``tensors`` holding a NaN or an infinity."""
    return sorted(name for name, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all()))


def _check_finite(key: str, generation: Generation) -> None:
    """``ValueError`` naming the request when a computed generation's array or captures are not finite."""
    bad = [] if np.isfinite(generation.array).all() else ["the image array"]
    bad += _non_finite({f"capture {site} step {step}": t for (site, step), t in generation.captures.items()})
    if bad:
        edit = generation.edit
        raise ValueError(f"generation cache: refusing to store a generation with non-finite values in {', '.join(bad)} "
                         f"(instruction {edit.instruction!r}, seed {edit.seed}, "
                         f"interventions {[i.describe() for i in generation.interventions]}, key {key[:16]}…): "
                         "the model produced NaN or infinity (check its dtype and weights)")


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array, dtype=np.float32))
    return buf.getvalue()


def _captures_from(tensors: dict) -> Captures:
    caps = Captures()
    for name, t in tensors.items():
        if name.endswith("|pos"):
            continue
        site, step = name.rsplit("|", 1)
        caps[(site, int(step))] = t
        caps.positions[(site, int(step))] = tensors[f"{name}|pos"]
    return caps


class CachingModel:
    """A ``Model`` whose ``generate`` goes through a ``GenerationCache``.

    Experiments take it wherever they take a ``Model``: a clean I2I baseline is generated
    once per task and shared by the lens, knockout and patching claims, across workers and runs.
    """

    def __init__(self, model: Model, cache: GenerationCache):
        self.model = model
        self.cache = cache
        self.fingerprint = model_fingerprint(model)
        self.generated = 0
        self.generation_seconds = 0.0  # spent in the model's own generate (cache misses)

    def __getattr__(self, name):
        return getattr(self.model, name)

    def key(self, edit, interventions: Iterable = (), capture: Iterable[Capture] = ()) -> str:
        """Cache key of one generation."""
        caps = sorted(c.resolved(self.model.table).key() for c in capture)
        parts = [self.fingerprint, self.model.sampling_key(), edit.key(), interventions_key(interventions, self.model.table),
                 *caps]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()

    def lookup(self, key: str, edit, interventions: tuple, repair: bool = False) -> Generation | None:
        """The cached generation under ``key`` (of ``edit`` with ``interventions``), or ``None``."""
        hit = self.cache.get(key, repair=repair)
        if hit is None:
            return None
        self.cache.hits += 1
        caps = _captures_from(hit.get("captures_tensors", {}))
        return Generation(hit["image"], hit["array"], caps, edit, self.model.layout(edit), interventions, Counter())

    def generate(self, edit, interventions: Iterable = (), capture: Iterable = ()) -> Generation:
        """``Model.generate`` with a cache in front (captures are cached too)."""
        interventions = tuple(interventions)
        capture = [as_capture(c) for c in capture]
        key = self.key(edit, interventions, capture)
        hit = self.lookup(key, edit, interventions)
        if hit is None:
            with self.cache.lease(key):  # one process computes it; the others wait here, then read it
                hit = self.lookup(key, edit, interventions, repair=True)
                if hit is None:
                    return self._compute(key, edit, interventions, capture)
        return hit

    def _compute(self, key: str, edit, interventions: tuple, capture: list) -> Generation:
        """Generate and store a missing entry (the caller holds its lease)."""
        start = time.perf_counter()
        gen = self.model.generate(edit, interventions, capture)
        self.store(key, gen, time.perf_counter() - start, capture=bool(capture))
        return gen

    def store(self, key: str, gen: Generation, seconds: float, *, capture: bool) -> None:
        """Store a generation computed for ``key`` (the caller holds its lease) and count it; with
        ``capture`` the same run is also the plain generation, stored under that key too."""
        self.cache.misses += 1
        self.generated += 1
        self.generation_seconds += seconds
        edit, interventions = gen.edit, gen.interventions
        self.cache.put(key, gen, {"model": self.model.model_id, "edit": edit.key(),
                                  "interventions": [i.describe() for i in interventions]})
        if capture:
            plain_key = self.key(edit, interventions)
            with self.cache.lease(plain_key, wait=False) as held:
                if held and self.cache.get(plain_key, repair=True) is None:
                    plain = Generation(gen.image, gen.array, Captures(), edit, gen.layout, interventions, gen.fired)
                    self.cache.put(plain_key, plain, {"model": self.model.model_id, "edit": edit.key()})
