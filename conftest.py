"""Repository-wide pytest set-up: deterministic CPU threads (hypothesis profiles: ``tests/conftest.py``)."""

import torch

#: the loopback Anthropic server fixture ``fake_anthropic`` for the library's tests
pytest_plugins = ["mechinterp.testing.fixtures"]

# one torch thread per process: the suite's models are small, so a second intra-op thread buys nothing on a
# quiet machine and spins under load (the colour main job at load ~3: 92 s with one thread, 112 s with two);
# xdist workers (one per core) then never oversubscribe either
torch.set_num_threads(1)
