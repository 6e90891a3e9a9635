"""The paper's relational claims: one cell against another (Newcombe interval of the difference).

E.g. KO ref→text destroys colour more than KO ref→image; padding-only patching is within a few
points of all-token patching and far above content-only.
"""

import pytest


@pytest.mark.claims(relation=True)
def test_relation(claim, check_claim):
    check_claim(claim)
