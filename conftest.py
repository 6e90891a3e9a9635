"""Repository-wide pytest set-up: deterministic CPU threads and hypothesis profiles."""

import os

import torch
from hypothesis import settings

#: the loopback Anthropic server fixture ``fake_anthropic`` for the library's tests
pytest_plugins = ["mechinterp.testing.fixtures"]

# two cores on CI machines: one thread per xdist worker, else up to two, so workers never oversubscribe
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, os.cpu_count() or 1)))

settings.register_profile("ci", deadline=None, max_examples=50, derandomize=True)
settings.register_profile("dev", deadline=None, max_examples=50)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
