"""The learning rate of every param group, as `lr/<group name>` (`lr/head`, `lr/backbone.3`, ...;
one name per group whatever the optimizer, so a sweep across optimizers keeps one curve per group).

Lightning's LearningRateMonitor names the optimizer in the key. Logged at the trainer's logging
steps (`trainer.log_every_n_steps`) and at the first step of every epoch, where unfreezing phases
begin: reading every group on every step cost a visible share of tiny steps.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L


class LearningRates(L.Callback):
    """Logs the lr each group will use at the step about to run."""

    def __init__(self) -> None:
        self._last_step = -1
        self._epoch_logged = -1

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if step == self._last_step or not trainer.loggers:  # accumulating micro-batches
            return
        self._last_step = step
        first_of_epoch = trainer.current_epoch != self._epoch_logged
        # Lightning logs a batch's metrics when (its step + 1) is a multiple of log_every_n_steps.
        if not first_of_epoch and (step + 1) % max(1, trainer.log_every_n_steps):
            return
        self._epoch_logged = trainer.current_epoch
        values = {
            f"lr/{group.get('name', index)}": float(group["lr"])
            for optimizer in trainer.optimizers
            for index, group in enumerate(optimizer.param_groups)
        }
        for logger in trainer.loggers:
            logger.log_metrics(values, step=step)
