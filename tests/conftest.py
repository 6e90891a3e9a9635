"""Shared fixtures and hypothesis profiles for the library's own tests (here, not in the root
``conftest.py``: the claim jobs use no hypothesis and should not pay its second of imports)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import settings
from PIL import Image

import mechinterp as mi
from mechinterp.testing.tiny import tiny_pipeline

settings.register_profile("ci", deadline=None, max_examples=50, derandomize=True)
settings.register_profile("dev", deadline=None, max_examples=50)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def tiny_model() -> mi.Model:
    """One tiny random-weight FLUX.2-klein model (2 double + 2 single blocks) per session."""
    return mi.Model(tiny_pipeline(seed=0))


def _solid(rgb, size=64) -> Image.Image:
    """A solid-colour reference image."""
    return Image.new("RGB", (size, size), rgb)


@pytest.fixture
def edit() -> mi.Edit:
    """A 64x64 colour edit with a red reference."""
    return mi.Edit("draw a ball in this color", reference=_solid((220, 30, 30)), seed=3, height=64, width=64)


@pytest.fixture
def solid():
    """Factory for solid-colour reference images: ``solid((r, g, b), size=64)``."""
    return _solid


DOCS = Path(__file__).resolve().parents[1] / "docs"


def _doc_blocks(name: str, lang: str, section: str | None = None) -> list[str]:
    """The ``lang`` code blocks of ``docs/<name>``, in order (``section``: only those under that heading, up to
    the next)."""
    text = (DOCS / name).read_text()
    if section is not None:
        sections, heading, fenced = {}, None, False
        for line in text.splitlines(keepends=True):
            fenced ^= line.startswith("```")
            if not fenced and (m := re.match(r"#+ (.*)$", line)):  # a heading, not a comment inside a code block
                heading = m.group(1)
            sections[heading] = sections.get(heading, "") + line
        text = sections[section]
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


@pytest.fixture
def doc_blocks():
    """``doc_blocks(name, lang, section=None)``: the docs' own code blocks, for tests that run them."""
    return _doc_blocks


@pytest.fixture
def ref_off():
    """docs/custom-claims.md's example experiment kind, registered by executing the docs' own code block;
    removed afterwards."""
    from mechinterp import vocabulary

    (code,) = _doc_blocks("custom-claims.md", "python", "Adding an experiment")
    exec(compile(code, str(DOCS / "custom-claims.md"), "exec"), {})
    try:
        yield vocabulary.EXPERIMENTS["ref_off"]
    finally:
        vocabulary.unregister("ref_off")


def pytest_collection_modifyitems(config, items):
    """Skip ``@pytest.mark.cuda`` tests with the reason where torch sees no CUDA GPU (``bench/gpu-check`` runs them)."""
    import torch

    if torch.cuda.is_available():
        return
    reason = f"needs a CUDA GPU: torch {torch.__version__} sees none (run bench/gpu-check on a GPU machine)"
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
