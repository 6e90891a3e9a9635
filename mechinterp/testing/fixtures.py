"""pytest fixtures over the test helpers (``pytest_plugins = ["mechinterp.testing.fixtures"]``): the
helpers themselves import no pytest, so a script can drive the fake server without it."""

import pytest

from mechinterp.testing.fake_anthropic import FakeAnthropicServer


@pytest.fixture
def fake_anthropic():
    """A running :class:`~mechinterp.testing.fake_anthropic.FakeAnthropicServer`, stopped after the test."""
    with FakeAnthropicServer() as server:
        yield server
