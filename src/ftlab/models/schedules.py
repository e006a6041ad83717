"""Learning-rate schedules that size themselves from the run's total optimizer steps.

A config instantiates one of these specs; the LightningModule calls `build` once Lightning knows
`estimated_stepping_batches`, and gets back Lightning's scheduler dict with the right interval.
"""

from __future__ import annotations

import math
from functools import partial

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR, StepLR


def _cosine_with_warmup(step: int, warmup: int, total: int, min_ratio: float) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class CosineWithWarmup:
    """Linear warmup from 0 then a cosine to `min_lr_ratio`; stepped every optimizer step.
    Multiplies each param group's own lr, so per-group ratios hold throughout."""

    def __init__(self, warmup_fraction: float = 0.1, min_lr_ratio: float = 0.0) -> None:
        self.warmup_fraction, self.min_lr_ratio = warmup_fraction, min_lr_ratio

    def build(self, optimizer: Optimizer, total_steps: int) -> dict:
        warmup = int(self.warmup_fraction * total_steps)
        schedule = partial(
            _cosine_with_warmup, warmup=warmup, total=total_steps, min_ratio=self.min_lr_ratio
        )
        return {"scheduler": LambdaLR(optimizer, schedule), "interval": "step"}


class OneCycle:
    def __init__(
        self, pct_start: float = 0.3, div_factor: float = 25.0, final_div_factor: float = 1e4
    ) -> None:
        self.pct_start, self.div_factor, self.final_div_factor = (
            pct_start,
            div_factor,
            final_div_factor,
        )

    def build(self, optimizer: Optimizer, total_steps: int) -> dict:
        scheduler = OneCycleLR(
            optimizer,
            max_lr=[group["lr"] for group in optimizer.param_groups],
            total_steps=max(1, total_steps),
            pct_start=self.pct_start,
            div_factor=self.div_factor,
            final_div_factor=self.final_div_factor,
        )
        return {"scheduler": scheduler, "interval": "step"}


class StepDecay:
    """Multiply every group's lr by `gamma` each `step_size` epochs."""

    def __init__(self, step_size: int = 1, gamma: float = 0.5) -> None:
        self.step_size, self.gamma = step_size, gamma

    def build(self, optimizer: Optimizer, total_steps: int) -> dict:
        return {"scheduler": StepLR(optimizer, self.step_size, self.gamma), "interval": "epoch"}
