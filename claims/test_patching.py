"""Table 3: I2I→I2I patching of the text stream transfers the source's properties.

Each test is one claim of `claims/registry.toml`; the plugin runs, judges and decides it.
"""

import pytest


@pytest.mark.claims(experiment="patching")
def test_patching(claim, check_claim):
    check_claim(claim)
