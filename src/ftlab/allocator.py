"""How a training process asks glibc's malloc to keep the memory it frees, for the next step.

With its defaults glibc maps large blocks on their own (above a threshold that rises to 32 MB as
the process frees such blocks) and unmaps them when freed, and hands the top of its heap back to
the kernel once more of it is free than a trim threshold (128 KB, rising with the other). A
training step frees and allocates the same blocks again each step (MiniLM's embedding gradient
alone is 47 MB), so every step touches tens of MB of fresh pages, which the kernel faults in and
zeroes one by one: about 18k page faults per MiniLM step on CPU, and 12-18% of the step's time (a
plain PyTorch loop, with and without this setting, side by side). With freed memory kept for
reuse the main thread, where a CPU step runs, takes none; other threads still map blocks of 64 MB
and more on their own.

It is what preloading jemalloc or tcmalloc does for PyTorch on CPU, done with the allocator the
process already has. The cost: memory freed during the run goes back to the system only when the
process ends, and until freed blocks merge into ones that fit the next request (a few steps) the
heap grows; MiniLM's peak RSS moved by 0.5% (1,628 against 1,620 MB). A process that runs trial
after trial (a sweep's worker) keeps its largest trial's peak, and forked data loader workers
inherit the setting and keep their own. Left alone where the user chose: `FTLAB_MALLOC=system`,
their own setting of these parameters (`MALLOC_MMAP_MAX_`, `MALLOC_TRIM_THRESHOLD_` and the like,
or in `GLIBC_TUNABLES`), an `LD_PRELOAD`ed allocator, or a C library other than glibc.
"""

from __future__ import annotations

import ctypes
import os

from ftlab.errors import FtlabError

OPT_OUT_VARIABLE = "FTLAB_MALLOC"  # "system": leave malloc as glibc configures it
_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_MAX = -4
# glibc's own names for what decides when freed memory goes back (as tunables, and as the
# MALLOC_<NAME>_ environment variables it reads at start-up)
_TUNABLES = ("mmap_max", "mmap_threshold", "trim_threshold", "top_pad")


# What a run records as its setting (the ftlab.malloc tag).
KEPT, SYSTEM, USERS = "keeps freed memory", "system default", "left to the user's setting"
_setting = SYSTEM


def keep_freed_memory() -> bool:
    """Set this process's malloc to keep freed memory; whether it was set. Call it before the
    large allocations start: blocks already mapped on their own are still unmapped when freed."""
    global _setting
    if _setting == KEPT:  # a worker calls this for every trial it runs
        return True
    if _allocator_chosen_by_user():
        _setting = USERS
        return False
    if not _glibc():
        return False
    libc = ctypes.CDLL("libc.so.6")
    no_separate_maps = libc.mallopt(_M_MMAP_MAX, 0) == 1  # big blocks come from the heap too
    never_trim = libc.mallopt(_M_TRIM_THRESHOLD, -1) == 1  # -1: the heap top is never trimmed
    if no_separate_maps and never_trim:
        _setting = KEPT
    return _setting == KEPT


def malloc_setting() -> str:
    """What this process's malloc does with freed memory: `KEPT`, `SYSTEM` or `USERS`. A run
    records it, since it moves CPU step times by 10-20%."""
    return _setting


def opted_out() -> bool:
    """Whether `FTLAB_MALLOC=system` is set. A misspelt value is refused rather than read as
    "keep"; a sweep asks before its study opens, so it fails once instead of in every trial."""
    opt_out = os.environ.get(OPT_OUT_VARIABLE, "").strip().lower()
    if opt_out not in ("", "system"):
        raise FtlabError(
            f"{OPT_OUT_VARIABLE} must be 'system' (leave malloc as glibc sets it) or unset "
            f"(got {opt_out!r})"
        )
    return opt_out == "system"


def _allocator_chosen_by_user() -> bool:
    """Settings of the two parameters set here, or another allocator. Others are kept as they
    are: `MALLOC_ARENA_MAX`, which many container images set, says nothing about these two."""
    if opted_out():
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
