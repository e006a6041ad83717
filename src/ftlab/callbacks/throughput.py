"""Epoch wall time and training samples per second, logged as perf/* each training epoch."""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as L


class Throughput(L.Callback):
    def __init__(self) -> None:
        self._start = 0.0
        self._samples = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._samples = time.perf_counter(), 0

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self._samples += len(batch[1])  # targets: one per example, whatever the input type

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = time.perf_counter() - self._start
        samples = self._samples * trainer.world_size  # every rank saw its own shard
        pl_module.log_dict(
            {"perf/epoch_time_s": seconds, "perf/samples_per_s": samples / max(seconds, 1e-9)},
            rank_zero_only=True,
        )
