"""Repository-wide pytest set-up: deterministic CPU threads and hypothesis profiles."""

import os

import torch
from hypothesis import settings

# two cores on CI machines: avoid oversubscription when xdist runs several workers
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

settings.register_profile("ci", deadline=None, max_examples=50, derandomize=True)
settings.register_profile("dev", deadline=None, max_examples=50)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
