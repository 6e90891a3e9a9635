"""Repository-wide pytest set-up: deterministic CPU threads and hypothesis profiles."""

import os

import torch
from hypothesis import settings

#: the loopback Anthropic server fixture ``fake_anthropic`` for the library's tests
pytest_plugins = ["mechinterp.testing.fixtures"]

# one torch thread per process: the suite's models are small, so a second intra-op thread buys nothing on a
# quiet machine and spins under load (the colour main job at load ~3: 92 s with one thread, 112 s with two);
# xdist workers (one per core) then never oversubscribe either
torch.set_num_threads(1)

settings.register_profile("ci", deadline=None, max_examples=50, derandomize=True)
settings.register_profile("dev", deadline=None, max_examples=50)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
