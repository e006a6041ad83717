"""A Lightning logger that writes metrics into a run ftlab already created.

ftlab owns the run's life cycle (tracking.run), so this logger never creates runs, never logs
params (Lightning's MLflow logger cuts them to 250 characters) and never sets the status. It
writes each metric to the run's spool on local disk; the run's reporter thread sends them in
batches. Logging therefore costs a local file append, whatever the server does.
"""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

from ftlab.tracking.spool import MetricSpool


class MlflowRunLogger(Logger):
    def __init__(
        self,
        spool: MetricSpool | None,
        run_id: str,
        logged_steps: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.spool, self.run_id = spool, run_id
        # The last step stored per key. A resumed run recomputes the steps between its checkpoint
        # and the interruption, already stored (and equal, training being deterministic); and
        # Lightning logs `epoch` with every call at a step. Each (key, step) is stored once.
        self.logged_steps = dict(logged_steps or {})

    @property
    def name(self) -> str:
        return "mlflow"

    @property
    def version(self) -> None:
        """None keeps a run-id fragment out of the progress bar; ftlab sets checkpoint dirs itself."""
        return None

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Params are logged once by ftlab from the resolved config, in full."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.spool is None:
            return
        timestamp = int(time.time() * 1000)
        step = int(step or 0)
        fresh = [(k, float(v)) for k, v in metrics.items() if step > self.logged_steps.get(k, -1)]
        self.logged_steps.update((k, step) for k, _ in fresh)
        self.spool.append((key, value, timestamp, step) for key, value in fresh)

    @rank_zero_only
    def flush(self) -> None:
        """A commit point (checkpoints call it): what was logged is on disk; the reporter sends it
        within its send interval."""
        if self.spool is not None:
            self.spool.commit()

    def save(self) -> None:
        """Lightning calls this after every log call; the spool is written as it goes."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.flush()
