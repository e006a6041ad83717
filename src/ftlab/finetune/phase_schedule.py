"""Per-group start epochs and warm-ups layered on top of any learning-rate schedule.

Groups that start training later (gradual unfreezing, LP-FT) carry `start_epoch` in their param
group. Their lr is 0 until then and ramps linearly over `warmup_steps` optimizer steps after it,
multiplied onto whatever the run's schedule says for that group.

Why a wrapper and not per-group lambdas in the schedule: the schedules are torch's own (LambdaLR,
OneCycleLR, StepLR) and StepLR is *chainable* — it multiplies the group's current `lr`, so any
factor written into `lr` would compound. The wrapper keeps the schedule's own value in the group
as `scheduled_lr`, restores it before stepping the schedule, then writes `scheduled_lr * factor`
into `lr`. The optimizer, and Lightning's LearningRateMonitor, see the lr actually used.

The wrapper is stepped after every optimizer step. It steps an epoch-interval schedule every
`steps_per_epoch` of its own steps — exactly when Lightning would. Its step count is saved in its
state dict, so a resumed run continues the ramp where it was.
"""

from __future__ import annotations

from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


def start_factor(step: int, start_step: int, warmup_steps: int) -> float:
    """0 before `start_step`, then a linear ramp reaching 1 after `warmup_steps` steps."""
    if step < start_step:
        return 0.0
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, (step - start_step + 1) / warmup_steps)


class PhaseSchedule(LRScheduler):
    """Wraps the run's schedule (or none) and applies each group's start factor.

    Subclasses LRScheduler only so Lightning accepts it as a scheduler; it does not use the base
    class's machinery (whose __init__ would step and rewrite the lrs once more).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        inner: dict[str, Any] | None,
        steps_per_epoch: int,
        warmup_steps: int,
    ) -> None:
        self.optimizer = optimizer
        self.inner = inner["scheduler"] if inner else None
        self.inner_interval = inner.get("interval", "epoch") if inner else "step"
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.warmup_steps = warmup_steps
        self.step_count = 0
        for group in optimizer.param_groups:
            group["scheduled_lr"] = group["lr"]
        self._apply()

    def factor(self, group: dict[str, Any]) -> float:
        start_step = int(group.get("start_epoch", 0)) * self.steps_per_epoch
        return start_factor(self.step_count, start_step, self.warmup_steps if start_step else 0)

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = group["scheduled_lr"] * self.factor(group)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def step(self, epoch: int | None = None) -> None:  # noqa: ARG002 - torch's signature
        self.step_count += 1
        due = self.inner_interval == "step" or self.step_count % self.steps_per_epoch == 0
        if self.inner is not None and due:
            for group in self.optimizer.param_groups:
                group["lr"] = group["scheduled_lr"]  # the schedule continues from its own value
            self.inner.step()
            for group in self.optimizer.param_groups:
                group["scheduled_lr"] = group["lr"]
        self._apply()

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        return {
            "step_count": self.step_count,
            "inner": self.inner.state_dict() if self.inner is not None else None,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # `scheduled_lr` travels inside the optimizer's param groups, restored by Lightning.
        self.step_count = int(state_dict["step_count"])
        if self.inner is not None and state_dict.get("inner") is not None:
            self.inner.load_state_dict(state_dict["inner"])
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
