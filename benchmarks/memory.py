"""Peak memory of this process, as both sides of the overhead benchmark report it."""

from __future__ import annotations

import resource
import sys


def peak_memory_mb() -> float:
    """CUDA: the most memory tensors ever held (max allocated). CPU: the peak resident set size."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB else
