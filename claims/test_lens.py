"""Table 1 (and Fig. 5): the T2I Lens reads what the text stream carries about the reference.

Each test is one claim of `claims/registry.toml`; the plugin runs, judges and decides it.
"""

import pytest


@pytest.mark.claims(experiment="t2i_lens")
def test_lens(claim, check_claim):
    check_claim(claim)
