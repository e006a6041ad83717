"""The progress bar, counting epochs as people do (`Epoch 1/3` is the first of three), and the
run's epoch summaries in `train.log`."""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning.pytorch as L
from lightning.pytorch.callbacks import RichProgressBar

log = logging.getLogger("ftlab.train")


class EpochProgressBar(RichProgressBar):
    """Lightning's rich progress bar, with epochs counted from 1 (it says `Epoch 0/2` for the
    first of three) and redrawn at most 5 times a second: Lightning updates the whole bar after
    every batch, and Rich's refresh thread renders it 100 times a second (its `refresh_rate`),
    milliseconds of Python under the GIL that steps of a small model cannot spare (2.5 ms of a
    25 ms digits step, measured)."""

    MIN_REDRAW_S = 0.2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("refresh_rate", round(1 / self.MIN_REDRAW_S))
        super().__init__(*args, **kwargs)
        self._drawn_at = 0.0

    def _redraw_due(self, batches_done: int, total: float) -> bool:
        now = time.monotonic()
        if batches_done >= total or now - self._drawn_at >= self.MIN_REDRAW_S:
            self._drawn_at = now
            return True
        return False

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.is_disabled:  # other ranks than 0
            return
        if self._redraw_due(batch_idx + 1, self.total_train_batches):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.is_disabled:  # other ranks than 0: no bar, and no dataloader index either
            return
        if self._redraw_due(batch_idx + 1, self.total_val_batches_current_dataloader):
            super().on_validation_batch_end(
                trainer, pl_module, outputs, batch, batch_idx, dataloader_idx
            )

    def _get_train_description(self, current_epoch: int) -> str:
        description = f"Epoch {current_epoch + 1}"
        if self.trainer.max_epochs is not None and self.trainer.max_epochs > 0:
            description += f"/{self.trainer.max_epochs}"
        if len(self.validation_description) > len(description):
            description = f"{description:{len(self.validation_description)}}"
        return description


class EpochSummary(L.Callback):
    """One line per epoch in the log (train.log): the epoch's train and validation metrics."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith(("train/", "val/")) and getattr(v, "numel", lambda: 1)() == 1
        }
        shown = " ".join(f"{k}={v:.5g}" for k, v in sorted(metrics.items()))
        total = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        log.info(
            "epoch %d%s (step %d): %s", trainer.current_epoch + 1, total, trainer.global_step, shown
        )

    def state_dict(self) -> dict[str, Any]:
        return {}
