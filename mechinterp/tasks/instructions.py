"""Add/remove instructions for SUN397 images, written by a VLM (paper Appendix F.1).

One call per image returns ``{"add_object": ..., "remove_object": ...}``; the reply is
validated here, not trusted: exactly those two keys, 1-4 lowercase words, distinct, not
both null, and no forbidden head noun (the prompt asks for this too, but a model may not
comply). Invalid replies are retried, then reported. Accepted proposals are cached in a
JSON file keyed by the image's pixel hash, the prompt and the model, so a rerun makes no
call. ``sun397_rows`` turns proposals into rows of the authors' ``add``/``remove`` jsonl
format, which ``load_family`` reads from a data directory.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from mechinterp.io import atomic_write
from mechinterp.io import image_digest
from mechinterp.judges.images import image_block
from mechinterp.tasks.records import TaskDataError, task_seed

#: the system prompt of Appendix F.1, shipped as data
SUN397_PROMPT = Path(__file__).with_name("sun397_instruction_prompt.txt").read_text(encoding="utf-8").strip()

#: nouns over-represented in the authors' earlier data; a phrase with one as head noun is rejected
FORBIDDEN_HEAD_NOUNS = frozenset({"bird", "backpack", "person", "bicycle", "bench", "bottle", "plant", "dog"})

_PHRASE = re.compile(r"[a-z]+(?:-[a-z]+)?(?: [a-z]+(?:-[a-z]+)?){0,3}")
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)
MAX_TOKENS = 200


class CompletionClient(Protocol):
    """Anything that answers one system + user turn, like ``judges.client.AnthropicClient``."""

    model: str

    def complete(self, system: str, content: list[dict] | str, max_tokens: int) -> Any:
        """Return a reply object with a ``.text`` attribute."""


class InstructionError(TaskDataError):
    """The VLM gave no acceptable proposal for an image."""


@dataclass(frozen=True)
class ObjectProposal:
    """The two object names proposed for one image (either may be None, not both)."""

    add_object: str | None
    remove_object: str | None


def head_noun(phrase: str) -> str:
    """The head noun of an English noun phrase: its last word (last part if hyphenated)."""
    return phrase.split()[-1].split("-")[-1]


def _check_phrase(field: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _PHRASE.fullmatch(value):
        raise InstructionError(f"{field} {value!r} is not 1-4 lowercase words without punctuation")
    head = head_noun(value)
    if {head, head.removesuffix("s"), head.removesuffix("es")} & FORBIDDEN_HEAD_NOUNS:
        raise InstructionError(
            f"{field} {value!r} has the forbidden head noun {head!r} "
            f"(forbidden: {', '.join(sorted(FORBIDDEN_HEAD_NOUNS))})"
        )
    return value


def parse_proposal(text: str) -> ObjectProposal:
    """Validate a reply (see module doc); raise ``InstructionError`` naming what is wrong."""
    stripped = text.strip() if isinstance(text, str) else ""
    fenced = _FENCE.match(stripped)
    try:
        data = json.loads(fenced.group(1) if fenced else stripped)
    except ValueError as err:
        raise InstructionError(f"reply is not JSON ({err}): {stripped[:200]!r}") from err
    return _validate(data)


def _validate(data: object) -> ObjectProposal:
    """Check a decoded reply (or cache entry) against the rules of the module doc."""
    if not isinstance(data, dict) or set(data) != {"add_object", "remove_object"}:
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise InstructionError(f"reply must be an object with keys add_object and remove_object, got {got}")
    add, remove = _check_phrase("add_object", data["add_object"]), _check_phrase("remove_object", data["remove_object"])
    if add is None and remove is None:
        raise InstructionError("both add_object and remove_object are null: no usable task")
    if add is not None and add == remove:
        raise InstructionError(f"add_object and remove_object must differ, both are {add!r}")
    return ObjectProposal(add, remove)


class ProposalCache:
    """Accepted proposals in one JSON file, keyed by image pixels + prompt + model.

    Every store rewrites the file atomically (temp file + ``os.replace``) after merging
    what other processes may have written meanwhile, so a crash never leaves it half-written.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @staticmethod
    def key(image: Image.Image, prompt: str, model: str) -> str:
        """The cache key of one (image, prompt, model) call."""
        return hashlib.sha256("\x1f".join([image_digest(image), prompt, model]).encode()).hexdigest()

    def _read(self) -> dict[str, dict]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise TaskDataError(f"instruction cache {str(self.path)!r} is not valid JSON: {err}") from err
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> ObjectProposal | None:
        """The cached proposal for ``key``, if any."""
        entry = self._read().get(key)
        if entry is None:
            return None
        try:  # validated again: a hand-edited cache obeys the same rules as a reply
            return _validate({k: entry.get(k) for k in ("add_object", "remove_object")})
        except InstructionError as err:
            raise TaskDataError(f"instruction cache {str(self.path)!r}, entry {key[:12]}…: {err}") from err

    def put(self, key: str, proposal: ObjectProposal, **info: Any) -> None:
        """Store a proposal (with bookkeeping such as model and tokens) under ``key``."""
        data = self._read()
        data[key] = {"add_object": proposal.add_object, "remove_object": proposal.remove_object, **info}
        atomic_write(self.path, json.dumps(data, indent=1, sort_keys=True))


def default_client() -> CompletionClient:
    """The real Anthropic client with the paper's model (key from ``ANTHROPIC_API_KEY``)."""
    from mechinterp.judges.client import AnthropicClient

    return AnthropicClient()


def propose_objects(image: Image.Image, client: CompletionClient, cache: ProposalCache,
                    prompt: str = SUN397_PROMPT, max_attempts: int = 3) -> ObjectProposal:
    """The add/remove objects for one image: from the cache, else from ``client``.

    An invalid reply is retried up to ``max_attempts`` calls in all; if none is valid the
    error names every rejected reply and why.
    """
    model = getattr(client, "model", "unknown")
    key = cache.key(image, prompt, model)
    cached = cache.get(key)
    if cached is not None:
        return cached
    content = [{"type": "text", "text": "Image:"}, image_block(image), {"type": "text", "text": "Return JSON now."}]
    errors = []
    for _ in range(max_attempts):
        reply = client.complete(prompt, content, MAX_TOKENS)
        try:
            proposal = parse_proposal(reply.text)
        except InstructionError as err:
            errors.append(str(err))
            continue
        cache.put(key, proposal, model=model, input_tokens=getattr(reply, "input_tokens", 0),
                  output_tokens=getattr(reply, "output_tokens", 0))
        return proposal
    raise InstructionError(f"no valid proposal after {max_attempts} replies from {model!r}: " + "; ".join(errors))


@dataclass(frozen=True)
class Sun397Image:
    """One prepared SUN397 reference: its path relative to the data dir and its origin."""

    rel_path: str
    category: str
    filename: str


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def sun397_rows(image: Sun397Image, proposal: ObjectProposal, size: tuple[int, int]) -> dict[str, dict]:
    """The ``add`` and/or ``remove`` task rows (authors' jsonl format) for one proposal."""
    stem = Path(image.rel_path).stem
    rows = {}
    for edit, noun, text in (("add", proposal.add_object, "add {article} {noun}"),
                             ("remove", proposal.remove_object, "remove the {noun}")):
        if noun is None:
            continue
        task_id = f"{edit}_{stem}_{re.sub(r'[ -]', '_', noun)}"
        rows[edit] = {
            "task_id": task_id, "edit_type": edit, "source": "sun397",
            "instruction": text.format(article=_article(noun), noun=noun),
            "noise_seed": task_seed(task_id), "width": size[0], "height": size[1],
            "source_image_path": image.rel_path,
            "metadata": {f"{edit}_object": noun, "sun397_category": image.category, "sun397_src_filename": image.filename},
        }
    return rows


def generate_sun397_rows(data_dir: str | Path, images: list[Sun397Image], cache_path: str | Path,
                         client: CompletionClient | None = None) -> dict[str, list[dict]]:
    """``{"add": rows, "remove": rows}`` for prepared SUN397 images in ``data_dir``.

    Write each list as ``<data-dir>/tasks/<edit>.jsonl`` to make the add/remove families
    loadable. ``client`` defaults to the real Anthropic client, which needs an API key
    only when some image is not cached yet.
    """
    root = Path(data_dir)
    cache = ProposalCache(cache_path)
    client = client or default_client()
    out: dict[str, list[dict]] = {"add": [], "remove": []}
    for image in images:
        path = root / image.rel_path
        if not path.is_file():
            raise TaskDataError(f"SUN397 image {image.rel_path!r} not found in data dir {str(root)!r}")
        with Image.open(path) as im:
            rgb = im.convert("RGB")
        proposal = propose_objects(rgb, client, cache)
        for edit, row in sun397_rows(image, proposal, rgb.size).items():
            out[edit].append(row)
    return out

