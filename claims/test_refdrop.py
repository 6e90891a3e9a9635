"""Reference drop: after the cutoff the reference is no longer needed.

Each test is one claim of `claims/registry.toml`; the plugin runs, judges and decides it.
"""

import pytest


@pytest.mark.claims(experiment="refdrop")
def test_refdrop(claim, check_claim):
    check_claim(claim)
