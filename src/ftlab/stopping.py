"""How a run stops, and the one place that decides how it ended.

ftlab owns SIGINT (Ctrl-C) and SIGTERM for the whole run through `StopSignals`. The order of
events:

- A first signal while training only records the request. Before the next training batch, or at
  the end of the epoch, `LastCheckpoint` saves `last.ckpt` (weights and optimizer agree there) and
  raises `Interrupted`; during validation it raises without saving, because the checkpoint from
  before validation is the consistent one. Lightning answers the KeyboardInterrupt with its
  `on_exception` hooks, then `sys.exit(1)`. Under DDP every rank stops at the same batch.
- A first signal during the fit's end (its last save, the end hooks), where no batch or epoch
  end is left to answer it, stops the run as soon as the fit returns, before its test.
- A signal while nothing trains (building, testing, logging the model) raises `Interrupted` at
  once; the CLI prints one line, and the way to resume where a checkpoint exists.
- A second signal raises `Interrupted` at once, wherever the run is.
- An exception propagates; the run ends FAILED with its traceback, and the CLI prints one line
  when it is an FtlabError.

`final_status` turns whatever left the run's `with` block into FINISHED, FAILED or KILLED;
`tracking.run.TrackedRun` asks it and nothing else.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop signal, raised where the run can stop. A KeyboardInterrupt, so Lightning and
    Hydra shut down as they do on Ctrl-C."""


class StopSignals:
    """The process's handler for SIGINT and SIGTERM (installed once, reference-counted)."""

    def __init__(self) -> None:
        self.requested = False  # a stop was asked for: the run ends KILLED
        self.graceful = False  # training is at work: wait for a consistent point to stop
        self._installs = 0
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach the main thread only; a threaded job has no handler to own
        if self._installs == 0:
            self.requested = False
            self._previous = {s: signal.signal(s, self._on_signal) for s in SIGNALS}
        self._installs += 1

    def uninstall(self) -> None:
        if self._installs == 0:
            return
        self._installs -= 1
        if self._installs == 0:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
            self._previous = {}

    def take_back(self) -> None:
        """Lightning composes its own SIGTERM handler with ours when fit starts; it would raise
        SIGTERMException after the batch in flight, a second way to stop. Ours alone stays."""
        if self._installs and threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        first = not self.requested
        self.requested = True
        if first and self.graceful:
            return
        raise Interrupted(f"stopped by signal {signal.Signals(signum).name}")


STOP = StopSignals()  # one per process: signals are process-wide


def final_status(
    kind: type[BaseException] | None, error: BaseException | None, stop_requested: bool
) -> str:
    """FINISHED, FAILED or KILLED for what left a run's block (None: it ended normally)."""
    if kind is not None and issubclass(kind, KeyboardInterrupt):
        return "KILLED"
    if kind is not None and issubclass(kind, SystemExit) and stop_requested:
        return "KILLED"  # Lightning turns the KeyboardInterrupt into sys.exit(1)
    if kind is None or (issubclass(kind, SystemExit) and getattr(error, "code", 1) in (0, None)):
        return "FINISHED"
    return "FAILED"
