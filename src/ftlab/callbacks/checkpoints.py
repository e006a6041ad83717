"""The checkpoint a resume starts from: `last.ckpt`, written atomically, on a schedule and on a
stop signal, carrying the RNG states an exact continuation needs.

Lightning's `ModelCheckpoint(save_last=True)` only saves when it validates, cannot add a step
schedule beside a monitored metric, and writes the file in place. This callback owns `last.ckpt`;
the monitored `ModelCheckpoint` keeps owning `best.ckpt`.
"""

from __future__ import annotations

import glob
import os
import random
import socket
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Checkpoint

from ftlab.callbacks import LAST_CHECKPOINT
from ftlab.errors import FtlabError
from ftlab.stopping import STOP, Interrupted

# A save writes `.<target>.<host>.<pid>.partial` first: a later process on the same host can
# tell from the name whether the writer of a left-over one is gone.
_PARTIAL = ".partial"
_HOST = socket.gethostname().replace("/", "_") or "host"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file beside the target, fsync, then rename over it, with the slow
    parts off the training thread.

    A rename within one directory is atomic: a kill during a save leaves the previous checkpoint
    whole, never a truncated one (Lightning writes local files in place). What stays on the
    training thread depends on where the state lives:

    - In host memory (training on the CPU), the file is written at once from the state as it is,
      and only the fsync and the rename wait in the background. A copy for a writer thread would
      cost about what the write into the page cache costs, the writer would then take the cores
      training runs on, and the copies would sit beside the next epoch's activations (MiniLM's
      best and last, 360 MB: the fit's peak RSS fell from 1.66 to 1.42 GB without them).
    - On an accelerator, the state is first copied into host memory (a write copies it there
      anyway), then written in the background while training goes on, with at most `IN_FLIGHT`
      copies held at once.

    Background work (writes, fsyncs and renames, removals) runs in the order asked for, on one
    thread, so an epoch's best and last checkpoints queue instead of one waiting for the other.
    The end of fit waits for it all, so a failed write is reported.

    The fit's last save needs no background at all: nothing trains after it. Inside
    `last_of_fit()` a save is written, fsynced and renamed on the calling thread from the
    checkpoint as given, while the background thread finishes what was queued before it (the
    epoch's best). Under DDP the other ranks wait at the save's barrier for what rank 0 does on
    its training thread: the write on the CPU, the copy (and for the fit's last save, the write)
    on an accelerator.
    """

    IN_FLIGHT = 2

    def __init__(self, background: bool = True, write_host_state_now: bool = True) -> None:
        super().__init__()
        self.background = background
        self.write_host_state_now = write_host_state_now  # False: copy host state too (tests)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[tuple[Future, bool, Path]] = []  # work; holds a copy; its file
        self._last_of_fit = False

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        if "://" in str(path):  # remote filesystems have their own transactions
            self.wait()
            return super().save_checkpoint(checkpoint, path, storage_options)
        target = Path(path)
        if self._last_of_fit:
            self._wait_for(target)  # an earlier write of this file must not land after this one
            return _write_atomically(checkpoint, target)
        if not self.background:
            self.wait()
            return _write_atomically(checkpoint, target)
        if self.write_host_state_now and _in_host_memory(checkpoint):
            self._wait_for(target)  # its partial file is this save's to write
            partial = _write_partial(checkpoint, target)
            self._submit(_commit, partial, target, path=target, holds_copy=False)
            return None
        self._wait_for_room()
        snapshot = _snapshot(checkpoint)
        self._submit(_write_atomically, snapshot, target, path=target, holds_copy=True)
        return None

    @contextmanager
    def last_of_fit(self) -> Iterator[None]:
        """Saves inside are written, fsynced and renamed before they return, without a copy: for
        a save that nothing changes after (the fit's last, or the one before a stop)."""
        self._last_of_fit = True
        try:
            yield
        finally:
            self._last_of_fit = False

    def remove_checkpoint(self, path: str | Path) -> None:
        if self._pending and "://" not in str(path):
            self._submit(super().remove_checkpoint, path, path=Path(path), holds_copy=False)
        else:
            self.wait()
            super().remove_checkpoint(path)

    def wait(self) -> None:
        """Block until every write and removal queued is done; then raise the first failure
        (the work queued after it still ran: nothing is left running behind a later save)."""
        pending, self._pending = self._pending, []
        failures = [future.exception() for future, _, _ in pending]
        first = next((failure for failure in failures if failure is not None), None)
        if first is not None:
            raise first

    def teardown(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None

    def _submit(self, work: Any, *args: Any, path: Path, holds_copy: bool) -> None:
        """Queue `work(*args)` behind what is queued; `path` is the file it writes or removes."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ftlab-checkpoint")
        self._pending.append((self._pool.submit(work, *args), holds_copy, path))

    def _wait_for(self, path: Path) -> None:
        """Retire the queue up to the last work on `path` (one worker runs it in order), so a
        failure is raised once, here, and not again at teardown."""
        touching = [i for i, (_, _, queued) in enumerate(self._pending) if queued == path]
        for _ in range(touching[-1] + 1 if touching else 0):
            self._pending.pop(0)[0].result()

    def _wait_for_room(self) -> None:
        # One worker finishes them in the order queued: the oldest is the one to wait for.
        while self._pending and (
            self._pending[0][0].done()
            or sum(holds for _, holds, _ in self._pending) >= self.IN_FLIGHT
        ):
            self._pending.pop(0)[0].result()  # a failed write stops training at the next save


def _write_atomically(checkpoint: dict[str, Any], target: Path) -> None:
    _commit(_write_partial(checkpoint, target), target)


def _write_partial(checkpoint: dict[str, Any], target: Path) -> Path:
    """The checkpoint in a temporary file beside `target`, in the page cache: not yet durable."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{_HOST}.{os.getpid()}{_PARTIAL}")
    try:
        with open(partial, "wb") as file:
            torch.save(checkpoint, file)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return partial


def _commit(partial: Path, target: Path) -> None:
    """fsync, then rename over `target`: after a crash the name holds either the old checkpoint
    or the whole new one, never a renamed file whose data had not reached the disk. The folder is
    fsynced after the rename so that the new name is itself on disk before anything that counts
    on it (the removal of the previous best, the run's end) can reach the disk ahead of it."""
    try:
        _fsync(partial)
        os.replace(partial, target)
        _fsync(target.parent)
    finally:
        partial.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """fsync a file or a folder (POSIX opens both read-only for it)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_stale_partials(directory: Path) -> list[Path]:
    """Remove the temporary files that processes of this host killed mid-save left in
    `directory` (a kill -9 runs no clean-up, and a MiniLM one holds 270 MB); the removed ones.
    A file whose process still runs, or that another host wrote (on a shared filesystem its
    process may be alive there), is left alone."""
    removed = []
    for path in directory.glob(f".*.{glob.escape(_HOST)}.*{_PARTIAL}"):  # none if no folder
        pid = path.name.removesuffix(_PARTIAL).rsplit(".", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


def _in_host_memory(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.device.type == "cpu"
    if isinstance(value, dict):
        return all(_in_host_memory(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_in_host_memory(v) for v in value)
    return True


def _snapshot(value: Any) -> Any:
    """A copy of a checkpoint that later training steps cannot change: containers copied, tensors
    copied into host memory, everything else (numbers, strings) shared.

    Host memory, not the tensors' device: a clone on an accelerator would hold a second training
    state (weights and optimizer moments) in its memory beside the next epoch's activations, until
    the write ends, and the write copies it to the host anyway."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return type(value)((k, _snapshot(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        copied = [_snapshot(v) for v in value]
        return type(value)(copied) if not hasattr(value, "_fields") else type(value)(*copied)
    return value


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


class ConfinedCheckpointPaths(L.Callback):
    """A resumed fit's best-checkpoint bookkeeping names only files in its own checkpoint folder.

    Lightning's ModelCheckpoint takes the paths it tracks (the best, the k-th best it deletes
    when a better one comes, the last) from the checkpoint it resumes from, which may come from a
    shared store: a tampered `last.ckpt` could name `<dirpath>/../anything` for deletion, or a
    file of the resuming user's as the best one to test and log. After the restore, any tracked
    path outside the callback's own folder resets that callback's bookkeeping, as in a new fit.
    """

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After Lightning restored the callbacks' state, and also when the resumed fit has no
        # epoch left to train (its test and model logging still read the best path).
        from lightning.pytorch.callbacks import ModelCheckpoint

        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and not _tracks_only_its_folder(callback):
                callback.best_k_models = {}
                callback.kth_best_model_path = callback.best_model_path = ""
                callback.last_model_path = ""
                callback.best_model_score = None
                callback.kth_value = torch.tensor(
                    torch.inf if callback.mode == "min" else -torch.inf
                )


def _tracks_only_its_folder(callback: Any) -> bool:
    folder = Path(callback.dirpath or ".").resolve()
    tracked = [
        *callback.best_k_models,
        callback.kth_best_model_path,
        callback.best_model_path,
        callback.last_model_path,
    ]
    return all(Path(path).resolve().is_relative_to(folder) for path in tracked if path)


class LastCheckpoint(Checkpoint):
    """Saves `<dirpath>/last.ckpt` after every epoch, every `every_n_steps` optimizer steps when
    set, and where a stop signal can be honoured (the order of events is in `ftlab.stopping`)."""

    def __init__(self, dirpath: str, every_n_steps: int | None = None) -> None:
        if every_n_steps is not None and every_n_steps <= 0:
            raise FtlabError(
                f"callbacks.last_checkpoint.every_n_steps must be > 0 or null (got {every_n_steps})"
            )
        self.dirpath, self.every_n_steps = Path(dirpath), every_n_steps
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
        if stop_requested(trainer):
            self._save(trainer, before_batch=True, last_of_fit=True)
            raise Interrupted("stopped by signal; checkpoint saved")
        step, every = trainer.global_step, self.every_n_steps
        # Between accumulated micro-batches global_step stands still: save once per step.
        if every and step > 0 and step % every == 0 and step != self._last_step_saved:
            self._save(trainer, before_batch=True)

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if stop_requested(trainer):
            raise Interrupted("stopped by signal during validation")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning calls checkpoint callbacks after the module's own epoch-end hook and after
        # validation, so early stopping and the best checkpoint are up to date in this file.
        self._save(trainer, last_of_fit=_fit_ends_after_this_epoch(trainer) or STOP.requested)
        if stop_requested(trainer):
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

    def _save(
        self, trainer: L.Trainer, before_batch: bool = False, last_of_fit: bool = False
    ) -> None:
        # A checkpoint is a commit point: the metrics logged so far are stored with it, so a
        # resume from it leaves no gap in the run's metric history.
        _flush_loggers(trainer)
        self._before_batch = before_batch
        io = trainer.strategy.checkpoint_io
        at_once = last_of_fit and isinstance(io, AtomicCheckpointIO)
        try:
            with io.last_of_fit() if at_once else nullcontext():
                trainer.save_checkpoint(self.path, weights_only=False)  # the full training state
        finally:
            self._before_batch = False
        self._last_step_saved = trainer.global_step

    # ------------------------------------------------------------ signals (see ftlab.stopping)
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        STOP.install()
        STOP.graceful = True
        if trainer.is_global_zero:  # the rank that writes; a resumed run's folder may hold
            remove_stale_partials(self.dirpath)  # the half-written file of the killed one

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        STOP.take_back()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            STOP.graceful = False
            STOP.uninstall()


def stop_requested(trainer: L.Trainer) -> bool:
    """Whether a stop signal reached any rank (every rank must save and stop together)."""
    if trainer.world_size > 1:
        return trainer.strategy.reduce_boolean_decision(STOP.requested, all=False)
    return STOP.requested


def _fit_ends_after_this_epoch(trainer: L.Trainer) -> bool:
    """Whether the fit loop stops once this epoch's end hooks are done, asked at their time.

    The conditions of Lightning's own `fit_loop.done` (recheck them when Lightning changes),
    which would answer this but logs and changes the epoch count when it says yes. A wrong answer
    costs only speed: a wrong yes writes and fsyncs the save (on an accelerator, copying it to
    the host too) before training goes on; a wrong no, on an accelerator, copies the state.
    """
    loop = trainer.fit_loop
    epochs_done = loop.epoch_progress.current.processed  # counted before on_train_epoch_end
    if loop.max_steps != -1 and trainer.global_step >= loop.max_steps:
        return True
    if loop.max_epochs != -1 and epochs_done >= loop.max_epochs:
        return True
    minimum_met = epochs_done >= (loop.min_epochs or 0) and trainer.global_step >= (
        loop.min_steps or 0
    )
    return bool(trainer.should_stop) and minimum_met


def _flush_loggers(trainer: L.Trainer) -> None:
    for logger in trainer.loggers:
        flush = getattr(logger, "flush", None)
        if callable(flush):
            flush()
