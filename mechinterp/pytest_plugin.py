"""pytest plugin for the claims suite (registered through the ``pytest11`` entry point).

Declares the claim markers so ``--strict-markers`` passes in any project that installs
mechinterp.
"""

from __future__ import annotations

#: claim markers: family and experiment of each paper claim
CLAIM_MARKERS: dict[str, str] = {
    "color": "colour-transfer claims",
    "style": "style-transfer claims",
    "human": "human-identity claims",
    "scene": "object addition/removal (scene) claims",
    "lens": "T2I Lens claims",
    "knockout": "attention-knockout claims",
    "patching": "I2I->I2I activation-patching claims",
    "refdrop": "reference-drop claims",
}


def pytest_configure(config) -> None:
    """Register the claim markers."""
    for name, text in CLAIM_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
