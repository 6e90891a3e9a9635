"""The claims suite's CPU thread policy: one torch intra-op thread per process unless asked otherwise.

Why one: the suite's CPU models (the organisms, the tiny pipeline) are small, so a generation's
matrix products are too short for a second intra-op thread to pay for its synchronisation. On a
quiet machine two threads gain almost nothing; on a shared one (a CI runner whose cores other jobs
use) each spare thread spins waiting for a core and the run slows down several fold: the colour
main job at load ~3 on 2 cores took 171 s for 4 claims with 2 threads and 35 s with 1. Under xdist
each worker is one process with one thread, so ``-n <cores>`` never oversubscribes. On a GPU the
work is on the device and torch's own choice is kept. ``--mi-threads N`` (ini ``mechinterp_threads``,
env ``MECHINTERP_THREADS``) sets N threads on any device.
"""

from __future__ import annotations


def thread_count(threads: int | None, device: str | None) -> int | None:
    """The intra-op thread count the policy asks for: ``threads`` when given, else 1 when ``device`` (``None``:
    cuda when available, else cpu) is the CPU, else ``None`` (leave torch's default)."""
    if threads is not None:
        return threads
    import torch

    name = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return 1 if torch.device(name).type == "cpu" else None


def apply_thread_policy(threads: int | None, device: str | None) -> int:
    """Set torch's intra-op threads by :func:`thread_count` (before a claim session loads its model);
    returns the count torch now uses."""
    import torch

    wanted = thread_count(threads, device)
    if wanted is not None and torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return torch.get_num_threads()
