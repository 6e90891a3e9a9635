"""``ModelMeta``: what a model folder says about itself beyond diffusers, the one reader/writer of ``mechinterp.json``.

Fields: ``max_sequence_length`` (the text length the model was built for: a different one is a
different sequence, so a different image), ``text_encoder_out_layers``, ``wiring`` (an organism's
permanent knockouts, as dicts), ``model_id``, ``default_size`` / ``default_steps`` (the one size and
step count a small model runs at; ``None``: the tasks' own size), ``site_map`` / ``sites`` (how the
paper's sites map onto the model's), ``tasks`` (which task family stands for a claim's on this
model: ``{"human": "glyph"}`` on the identity organisms), ``organism`` and ``training`` (an organism's record); any
other key is kept in ``extra``, so nothing a folder carries is lost on a rewrite.

It travels with the pipeline in its own config (``pipe.config["_mechinterp"]``, registered by
:meth:`ModelMeta.attach`): diffusers writes that into ``model_index.json`` and ignores it on load,
so even a plain ``pipe.save_pretrained(folder)`` keeps the text length, and :meth:`ModelMeta.read`
finds it there when a folder has no ``mechinterp.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mechinterp.io import atomic_write

META_FILE = "mechinterp.json"
#: the pipeline-config key the metadata travels under (``_``: diffusers ignores it on load)
CONFIG_KEY = "_mechinterp"
DEFAULT_TEXT_LEN = 512
DEFAULT_OUT_LAYERS = (9, 18, 27)
DEFAULT_STEPS = 4


@dataclass(frozen=True)
class ModelMeta:
    """A model's own metadata (module doc); every reader of ``mechinterp.json`` goes through this class."""

    max_sequence_length: int | None = None
    text_encoder_out_layers: tuple[int, ...] | None = None
    wiring: tuple[dict, ...] = ()
    model_id: str | None = None
    default_size: int | None = None
    default_steps: int | None = None
    site_map: dict[str, str] = field(default_factory=dict)
    sites: dict[str, str] = field(default_factory=dict)
    #: claim task family -> the task family that stands for it on this model (``{"human": "glyph"}``)
    tasks: dict[str, str] = field(default_factory=dict)
    organism: str | None = None
    training: dict | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # -- derived values: the one place their defaults live -------------------------------------
    @property
    def text_len(self) -> int:
        """The text length (512, FLUX.2-klein's, when the folder names none)."""
        return int(self.max_sequence_length or DEFAULT_TEXT_LEN)

    @property
    def out_layers(self) -> tuple[int, ...]:
        """The text encoder's hidden-state layers the pipeline stacks."""
        return tuple(int(x) for x in (self.text_encoder_out_layers or DEFAULT_OUT_LAYERS))

    @property
    def steps(self) -> int:
        """The denoising steps the model runs at (4 when it names none)."""
        return int(self.default_steps or DEFAULT_STEPS)

    @property
    def size(self) -> int | None:
        """The one image size the model runs at, or ``None`` (the tasks' own sizes)."""
        return int(self.default_size) if self.default_size else None

    # -- dicts, folders, pipelines --------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict | None, where: str = "model metadata") -> "ModelMeta":
        """From the JSON object of ``mechinterp.json`` (unknown keys go to ``extra``)."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValueError(f"{where} must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)} - {"extra"}
        kw = {k: v for k, v in data.items() if k in known}
        for key in ("text_encoder_out_layers",):
            if kw.get(key) is not None:
                kw[key] = tuple(kw[key])
        kw["wiring"] = tuple(dict(w) for w in kw.get("wiring") or ())
        kw["site_map"], kw["sites"] = dict(kw.get("site_map") or {}), dict(kw.get("sites") or {})
        kw["tasks"] = dict(kw.get("tasks") or {})
        return cls(**kw, extra={k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to ``mechinterp.json`` (unset fields left out)."""
        out = {k: v for k, v in asdict(self).items() if k != "extra" and v not in (None, (), {})}
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return {**self.extra, **out}

    def replace(self, **changes) -> "ModelMeta":
        """A copy with some fields changed."""
        from dataclasses import replace

        return replace(self, **changes)

    @classmethod
    def read(cls, folder: str | Path) -> "ModelMeta":
        """A folder's metadata: its ``mechinterp.json``, else what a plain ``save_pretrained`` left in
        ``model_index.json``, else none; ``ValueError`` names a file that is not valid JSON."""
        folder = Path(folder)
        for path, pick in ((folder / META_FILE, lambda d: d), (folder / "model_index.json", lambda d: d.get(CONFIG_KEY))):
            if not path.exists():
                continue
            try:
                data = pick(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError) as err:
                raise ValueError(f"model metadata {str(path)!r} is not valid JSON: {err}") from err
            if data is not None:
                return cls.from_dict(data, repr(str(path)))
        return cls()

    def write(self, folder: str | Path) -> Path:
        """Write ``folder/mechinterp.json`` atomically."""
        path = Path(folder) / META_FILE
        atomic_write(path, json.dumps(self.to_dict(), indent=2, sort_keys=True))
        return path

    @classmethod
    def of(cls, pipe) -> "ModelMeta":
        """The metadata a pipeline carries in its config (none: empty)."""
        config = getattr(pipe, "config", None) or {}
        return cls.from_dict(config.get(CONFIG_KEY) if hasattr(config, "get") else None)

    def attach(self, pipe):
        """Register this metadata in ``pipe``'s config (so ``save_pretrained`` keeps it); returns ``pipe``."""
        pipe.register_to_config(**{CONFIG_KEY: self.to_dict()})
        return pipe
