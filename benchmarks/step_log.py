"""The callback the overhead benchmark adds to `ftlab train` from the command line
(`+callbacks.step_log={_target_: step_log.StepLog, out: FILE}`, `benchmarks/` on PYTHONPATH).
It records what the plain loop records by hand, so both sides are measured alike."""

from __future__ import annotations

import json
import time
from typing import Any

import lightning.pytorch as L
import torch
from memory import peak_memory_mb


class StepLog(L.Callback):
    """Wall time from one optimizer step's end to the next, the loss of each step, which
    intervals hold an epoch end (validation, checkpoint), fit time and peak memory."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.ends: list[float] = []
        self.losses: list[float] = []
        self.epoch_ends: list[int] = []  # number of steps done when an epoch ended
        self.fit_start = 0.0

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.fit_start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, module: Any, outputs: Any, *args: Any) -> None:
        # .item() waits for the step to finish (a sync point on GPU); the plain loop does the same.
        self.losses.append(float(outputs["loss"].item()))
        self.ends.append(time.perf_counter())

    def on_train_epoch_end(self, trainer: L.Trainer, module: Any) -> None:
        self.epoch_ends.append(len(self.ends))

    def on_fit_end(self, trainer: L.Trainer, module: Any) -> None:
        record = {
            "step_ends": self.ends,
            "losses": self.losses,
            "epoch_ends": self.epoch_ends,
            "fit_s": time.perf_counter() - self.fit_start,
            "peak_memory_mb": peak_memory_mb(),
            "torch_threads": torch.get_num_threads(),
            "val_loss": float(trainer.callback_metrics.get("val/loss", float("nan"))),
        }
        with open(self.out, "w") as file:
            json.dump(record, file)
