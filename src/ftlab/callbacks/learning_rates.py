"""The learning rate of every param group at every optimizer step.

Lightning's LearningRateMonitor logs only every `log_every_n_steps`; warm-ups, unfreezing phases
and layer decay are easy to misread at that resolution. One value per group per step costs
nothing with ftlab's batching logger.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L


class LearningRates(L.Callback):
    """Logs `lr-<Optimizer>/<group name>` before each optimizer step: the lr that step uses."""

    def __init__(self) -> None:
        self._last_step = -1

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if step == self._last_step or not trainer.loggers:  # accumulating micro-batches
            return
        self._last_step = step
        values = {}
        for optimizer in trainer.optimizers:
            kind = type(optimizer).__name__
            for index, group in enumerate(optimizer.param_groups):
                values[f"lr-{kind}/{group.get('name', index)}"] = float(group["lr"])
        for logger in trainer.loggers:
            logger.log_metrics(values, step=step)
