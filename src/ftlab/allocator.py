"""How a training process asks glibc's malloc to keep the memory it frees, for the next step.

By default glibc maps every block over 32 MB on its own and unmaps it when freed, and hands the
top of its heap back to the kernel once 128 KB of it are free. A training step frees and
allocates the same blocks again each step (MiniLM's embedding gradient alone is 47 MB), so every
step touches tens of MB of fresh pages, which the kernel faults in and zeroes one by one: about
18k page faults per MiniLM step on CPU, and 12-18% of the step's time (a plain PyTorch loop, with
and without this setting, side by side). With the freed memory kept for reuse there are none.

It is what preloading jemalloc or tcmalloc does for PyTorch on CPU, done with the allocator the
process already has. The cost: memory freed during the run goes back to the system only when the
process ends, and until freed blocks merge into ones that fit the next request (a few steps) the
heap grows; MiniLM's peak RSS moved by 0.5% (1,628 against 1,620 MB). Left alone where the user chose: `FTLAB_MALLOC=system`, their own setting of
these parameters (`MALLOC_MMAP_MAX_`, `MALLOC_TRIM_THRESHOLD_` and the like, or in
`GLIBC_TUNABLES`), an `LD_PRELOAD`ed allocator, or a C library other than glibc.
"""

from __future__ import annotations

import ctypes
import os

OPT_OUT_VARIABLE = "FTLAB_MALLOC"  # "system": leave malloc as glibc configures it
_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_MAX = -4
# glibc's own names for what decides when freed memory goes back (as tunables, and as the
# MALLOC_<NAME>_ environment variables it reads at start-up)
_TUNABLES = ("mmap_max", "mmap_threshold", "trim_threshold", "top_pad")


KEPT, SYSTEM = "keeps freed memory", "system default"  # what a run records as its setting
_setting = SYSTEM


def keep_freed_memory() -> bool:
    """Set this process's malloc to keep freed memory; whether it was set. Call it before the
    large allocations start: blocks already mapped on their own are still unmapped when freed."""
    global _setting
    if _setting == KEPT:  # a worker calls this for every trial it runs
        return True
    if _allocator_chosen_by_user() or not _glibc():
        return False
    libc = ctypes.CDLL("libc.so.6")
    no_separate_maps = libc.mallopt(_M_MMAP_MAX, 0) == 1  # big blocks come from the heap too
    never_trim = libc.mallopt(_M_TRIM_THRESHOLD, -1) == 1  # -1: the heap top is never trimmed
    if no_separate_maps and never_trim:
        _setting = KEPT
    return _setting == KEPT


def malloc_setting() -> str:
    """What this process's malloc does with freed memory: `KEPT` or `SYSTEM`. A run records it,
    since it moves CPU step times by 10-20%."""
    return _setting


def _allocator_chosen_by_user() -> bool:
    """Settings of the two parameters set here, or another allocator. Others are kept as they
    are: `MALLOC_ARENA_MAX`, which many container images set, says nothing about these two."""
    if os.environ.get(OPT_OUT_VARIABLE, "").strip().lower() == "system":
        return True
    if os.environ.get("LD_PRELOAD"):
        return True
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if any(f"glibc.malloc.{name}" in tunables for name in _TUNABLES):
        return True
    return any(f"MALLOC_{name.upper()}_" in os.environ for name in _TUNABLES)


def _glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError, AttributeError):  # not a GNU system
        return False
