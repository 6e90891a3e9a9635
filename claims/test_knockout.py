"""Tables 2 and D1: attention knockouts — which edges carry the reference's properties.

Each test is one claim of `claims/registry.toml`; the plugin runs, judges and decides it.
"""

import pytest


@pytest.mark.claims(experiment="knockout")
def test_knockout(claim, check_claim):
    check_claim(claim)
