"""A callback that sends its own process a stop signal at one hook, so tests can stop a run at a
moment a person could only hit by chance (`+callbacks.signal_at={_target_: signal_at.SignalAt,
hook: on_train_end}` with this folder on PYTHONPATH)."""

from __future__ import annotations

import os
import signal
from typing import Any

import lightning.pytorch as L


class SignalAt(L.Callback):
    def __init__(self, hook: str, signum: int = signal.SIGTERM) -> None:
        self.signum = signum
        setattr(self, hook, self._send)

    def _send(self, *args: Any, **kwargs: Any) -> None:
        os.kill(os.getpid(), self.signum)


def stop_at_second_trial(config: Any, trial: Any) -> None:
    """A sweep's `custom_search_space` hook that sends a stop signal right after trial 1 is
    asked, before it has a heartbeat or a job."""
    if trial.number == 1:
        os.kill(os.getpid(), signal.SIGTERM)
