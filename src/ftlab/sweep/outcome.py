"""What a finished job means for its trial: COMPLETE with its value(s), PRUNED, or FAIL.

A job is any Hydra task function: ftlab's `train` returns a dict (`value`, `pruned_at_epoch`),
another app a number or a list of numbers (one per objective). 0.0 is a result like any other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hydra.core.utils import JobStatus

from ftlab.names import OBJECTIVE_ERROR, PRUNED_AT


@dataclass
class Outcome:
    state: str  # COMPLETE, PRUNED or FAIL
    values: list[float] | None = None
    error: str | None = None

    @property
    def value(self) -> float | None:
        """The single objective's value (the first of several)."""
        return self.values[0] if self.values else None


def judge(job: Any, objectives: int) -> Outcome:
    if job.status != JobStatus.COMPLETED:
        error = job._return_value  # the exception the job raised (JobReturn keeps it)
        return Outcome("FAIL", error=f"{type(error).__name__}: {error}"[:500])
    result = job.return_value
    pruned = isinstance(result, dict) and result.get(PRUNED_AT) is not None
    raw = result.get("value") if isinstance(result, dict) else result
    values = _as_values(raw)
    if pruned:
        return Outcome("PRUNED", values if values and len(values) == objectives else None)
    if values is None:
        explained = result.get(OBJECTIVE_ERROR) if isinstance(result, dict) else None
        return Outcome("FAIL", error=explained or f"the job returned {raw!r}, not a number")
    if len(values) != objectives:
        return Outcome(
            "FAIL", error=f"the job returned {len(values)} values for {objectives} objectives"
        )
    if not all(math.isfinite(v) for v in values):
        return Outcome("FAIL", error=f"objective is {raw}")
    return Outcome("COMPLETE", values)


def _as_values(raw: Any) -> list[float] | None:
    items = list(raw) if isinstance(raw, list | tuple) else [raw]
    try:
        return [float(v) for v in items] if items and None not in items else None
    except (TypeError, ValueError):
        return None
