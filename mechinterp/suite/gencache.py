"""Content-addressed generation cache shared by every claim, worker and rerun.

A generation's key hashes everything that determines it: the model fingerprint (the model by
content, wiring, dtype, device type, library versions), the sampling (noise device type,
guidance), the edit, the interventions and the captures asked for. Each entry is a PNG (plus ``captures.safetensors`` when captures were asked for)
and a JSON record, written to temporary files and moved into place with ``os.replace``; the
JSON goes last and marks the entry complete, so a run killed with ``kill -9`` leaves either a
whole entry or none, and a restarted run redoes nothing it finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mechinterp.engine.edit import image_png_bytes
from mechinterp.io import atomic_write
from mechinterp.engine.interventions import Capture, Captures, interventions_key
from mechinterp.engine.generation import Generation, as_capture
from mechinterp.engine.model import Model


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
    """Generations stored by content key under ``root`` (safe for concurrent xdist workers)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root) / "generations"
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> dict | None:
        """The stored record for ``key`` with its image (and captures), or ``None``."""
        folder = self._dir(key)
        try:
            record = json.loads((folder / "record.json").read_text())
            with Image.open(folder / "image.png") as im:
                record["image"] = im.convert("RGB")
            if record.get("captures"):
                from safetensors.torch import load_file

                record["captures_tensors"] = load_file(folder / "captures.safetensors")
        except (OSError, json.JSONDecodeError, ValueError):
            return None  # absent, or half-written by a killed run: regenerate
        return record

    def put(self, key: str, generation: Generation, meta: dict | None = None) -> None:
        """Store a generation (image, float array, captures) atomically."""
        from safetensors.torch import save as save_tensors

        folder = self._dir(key)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / "image.png", image_png_bytes(generation.image))
        atomic_write(folder / "array.npy", _npy_bytes(generation.array))
        caps = {}
        for (site, step), t in generation.captures.items():
            caps[f"{site}|{step}"] = t.detach().cpu().clone()
            caps[f"{site}|{step}|pos"] = generation.captures.positions[(site, step)].cpu().clone()
        if caps:
            atomic_write(folder / "captures.safetensors", save_tensors(caps))
        record = {"key": key, "captures": bool(caps), **(meta or {})}
        atomic_write(folder / "record.json", json.dumps(record, sort_keys=True, default=str), fsync=True)

    def array(self, key: str) -> np.ndarray | None:
        """The float image array stored with ``key``."""
        try:
            return np.load(self._dir(key) / "array.npy")
        except (OSError, ValueError):
            return None


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

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

    def generate(self, edit, interventions: Iterable = (), capture: Iterable = ()) -> Generation:
        """``Model.generate`` with a cache in front (captures are cached too)."""
        interventions = tuple(interventions)
        capture = [as_capture(c) for c in capture]
        key = self.key(edit, interventions, capture)
        hit = self.cache.get(key)
        if hit is not None:
            self.cache.hits += 1
            array = self.cache.array(key)
            if array is None:
                array = np.asarray(hit["image"], dtype=np.float32) / 255.0
            caps = _captures_from(hit.get("captures_tensors", {}))
            return Generation(hit["image"], array, caps, edit, self.model.layout(edit), interventions, Counter())
        self.cache.misses += 1
        self.generated += 1
        start = time.perf_counter()
        gen = self.model.generate(edit, interventions, capture)
        self.generation_seconds += time.perf_counter() - start
        self.cache.put(key, gen, {"model": self.model.model_id, "edit": edit.key(),
                                  "interventions": [i.describe() for i in interventions]})
        if capture:  # the same run is also the plain generation: store it under that key
            plain = Generation(gen.image, gen.array, Captures(), edit, gen.layout, interventions, gen.fired)
            self.cache.put(self.key(edit, interventions), plain, {"model": self.model.model_id, "edit": edit.key()})
        return gen
