"""Do a reproduced run's final metrics and weights equal the original's?"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ftlab.names import TAG_WEIGHTS

COMPARED_PREFIXES = ("train/", "val/", "test/")  # perf/, system/ and lr-* differ by nature
GPU_RTOL = 1e-3  # GPU kernels are not bit-exact run to run; CPU runs are compared exactly


@dataclass
class Comparison:
    key: str
    original: Any
    reproduced: Any
    equal: bool
    checked: bool = True  # False: shown, but does not decide the check


def compare_runs(original: Any, reproduced: Any, rtol: float) -> list[Comparison]:
    """One row per final metric both runs logged, plus the weights hash when both have one."""
    a, b = original.data.metrics, reproduced.data.metrics
    keys = sorted(k for k in set(a) & set(b) if k.startswith(COMPARED_PREFIXES))
    rows = [Comparison(k, a[k], b[k], _close(a[k], b[k], rtol)) for k in keys]
    for key in sorted(set(a) ^ set(b)):
        if key.startswith(COMPARED_PREFIXES):
            rows.append(Comparison(key, a.get(key), b.get(key), False))
    hash_a, hash_b = original.data.tags.get(TAG_WEIGHTS), reproduced.data.tags.get(TAG_WEIGHTS)
    if hash_a and hash_b:
        # Bitwise equality only means something when the metrics must be exact too.
        rows.append(
            Comparison("weights sha256", hash_a[:16], hash_b[:16], hash_a == hash_b, rtol == 0)
        )
    return rows


def default_rtol(*runs: Any) -> float:
    """Exact on CPU; GPU_RTOL when either run trained on a GPU."""
    on_gpu = any(run.data.tags.get("device.type", "cpu") != "cpu" for run in runs)
    return GPU_RTOL if on_gpu else 0.0


def _close(a: float, b: float, rtol: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    return a == b or abs(a - b) <= rtol * max(abs(a), abs(b))
