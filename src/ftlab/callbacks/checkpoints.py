"""The checkpoint a resume starts from: `last.ckpt`, written atomically, on a schedule and on a
stop signal, carrying the RNG states an exact continuation needs.

Lightning's `ModelCheckpoint(save_last=True)` only saves when it validates, cannot add a step
schedule beside a monitored metric, and writes the file in place. This callback owns `last.ckpt`;
the monitored `ModelCheckpoint` keeps owning `best.ckpt`.
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import lightning.pytorch as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Checkpoint

from ftlab.callbacks import LAST_CHECKPOINT

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """A stop signal, raised once training is at a point where a checkpoint is consistent.
    A KeyboardInterrupt, so Lightning shuts down the same way as on Ctrl-C."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file beside the target, fsync, then rename over it.

    A rename within one directory is atomic: a kill during a save leaves the previous checkpoint
    whole, never a truncated one (Lightning writes local files in place).
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        if "://" in str(path):  # remote filesystems have their own transactions
            return super().save_checkpoint(checkpoint, path, storage_options)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            with open(partial, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)


def rng_states() -> dict[str, Any]:
    """The global RNG states of Python, NumPy and torch, as plain lists and tensors (loadable
    with `weights_only=True`)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.copy()), position, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy(), position, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class LastCheckpoint(Checkpoint):
    """Saves `<dirpath>/last.ckpt` after every epoch, every `every_n_steps` optimizer steps when set, and when
    SIGTERM or SIGINT arrives.

    A signal only sets a flag: the save happens before the next training batch (or at the
    epoch's end), where weights and optimizer state agree, then training stops as interrupted
    (the run ends KILLED). A second signal stops at once. During validation a signal stops
    without a new save; the checkpoint from before validation is the consistent one.
    """

    def __init__(self, dirpath: str, every_n_steps: int | None = None) -> None:
        if every_n_steps is not None and every_n_steps <= 0:
            raise ValueError("callbacks.last_checkpoint.every_n_steps must be > 0 or null")
        self.dirpath, self.every_n_steps = Path(dirpath), every_n_steps
        self._stop_requested = False
        self._previous_handlers: dict[int, Any] = {}
        self._last_step_saved = -1
        self._before_batch = False

    @property
    def path(self) -> Path:
        return self.dirpath / LAST_CHECKPOINT

    @property
    def state_key(self) -> str:
        return "LastCheckpoint"

    # ------------------------------------------------------------ RNG state travels with the file
    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Restored before the fit loop draws anything: the next epoch's dropout masks are the ones
        # an uninterrupted run would have drawn (data order does not use the global RNG).
        set_rng_states(state_dict["rng"])

    # ------------------------------------------------------------ schedule
    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        """Step saves and signal stops happen here, before the batch trains: the state is the one
        after the previous optimizer step, and that step's metrics are already logged (at batch
        end Lightning has not logged them yet, so a resume from there would leave a gap)."""
        if self._stop_now(trainer):
            self._save(trainer, before_batch=True)
            raise Interrupted("stopped by signal; checkpoint saved")
        step, every = trainer.global_step, self.every_n_steps
        # Between accumulated micro-batches global_step stands still: save once per step.
        if every and step > 0 and step % every == 0 and step != self._last_step_saved:
            self._save(trainer, before_batch=True)

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self._stop_now(trainer):
            raise Interrupted("stopped by signal during validation")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning calls checkpoint callbacks after the module's own epoch-end hook and after
        # validation, so early stopping and the best checkpoint are up to date in this file.
        self._save(trainer)
        if self._stop_now(trainer):
            raise Interrupted("stopped by signal; checkpoint saved")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _flush_loggers(trainer)  # the last epoch's metrics are stored before a kill can lose them

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if not self._before_batch:
            return
        # Lightning expects mid-epoch saves at batch end. Saved before a batch, the progress
        # counts that batch as fetched ("ready") but not started; uncount it, so a resume sees a
        # save after the last finished batch and neither repeats nor skips a logging step.
        progress = checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]
        for counter in ("total", "current"):
            progress[counter]["ready"] = progress[counter]["started"]

    def _save(self, trainer: L.Trainer, before_batch: bool = False) -> None:
        # A checkpoint is a commit point: the metrics logged so far are stored with it, so a
        # resume from it leaves no gap in the run's metric history.
        _flush_loggers(trainer)
        self._before_batch = before_batch
        try:
            trainer.save_checkpoint(self.path, weights_only=False)  # the full training state
        finally:
            self._before_batch = False
        self._last_step_saved = trainer.global_step

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        """Lightning answers SIGTERM itself: it raises SIGTERMException after the batch in
        flight, before this callback's next hook. Between batches the state is consistent, so
        save it then; not in the middle of validation."""
        from lightning.pytorch.trainer.states import RunningStage
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exception, SIGTERMException) and trainer.state.stage == RunningStage.TRAINING:
            self._save(trainer)

    # ------------------------------------------------------------ signals
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_requested = False
        for signum in STOP_SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stop_requested:  # asked twice: stop now
            raise Interrupted(f"received signal {signum} twice")
        self._stop_requested = True

    def _stop_now(self, trainer: L.Trainer) -> bool:
        if trainer.world_size > 1:  # every rank must save and stop together
            return trainer.strategy.reduce_boolean_decision(self._stop_requested, all=False)
        return self._stop_requested


def _flush_loggers(trainer: L.Trainer) -> None:
    for logger in trainer.loggers:
        flush = getattr(logger, "flush", None)
        if callable(flush):
            flush()
