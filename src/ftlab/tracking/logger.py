"""A Lightning logger that writes metrics into a run ftlab already created.

ftlab owns the run's life cycle (tracking.run), so this logger never creates runs, never logs
params (Lightning's MLflow logger cuts them to 250 characters) and never sets the status. It
buffers metrics and sends them in batches: one HTTP/SQL round trip per `flush_every` values
instead of one per value.
"""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only


class MlflowRunLogger(Logger):
    def __init__(
        self,
        tracking_uri: str,
        run_id: str,
        flush_every: int = 200,
        flush_seconds: float = 5.0,
        logged_steps: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.tracking_uri, self.run_id = tracking_uri, run_id
        # A resumed run recomputes the steps between its checkpoint and the interruption; those
        # values are already stored (and equal, training being deterministic): skip them.
        self.logged_steps = dict(logged_steps or {})
        self.flush_every, self.flush_seconds = flush_every, flush_seconds
        self._buffer: list[Any] = []
        self._last_flush = time.monotonic()
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def __getstate__(self) -> dict[str, Any]:
        # The client holds a database connection: spawned DDP workers make their own.
        return {**self.__dict__, "_client": None, "_buffer": []}

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
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        step = int(step or 0)
        for key, value in metrics.items():
            if step > self.logged_steps.get(key, -1):
                self._buffer.append(Metric(key, float(value), timestamp, step))
        if (
            len(self._buffer) >= self.flush_every
            or time.monotonic() - self._last_flush > self.flush_seconds
        ):
            self.flush()

    @rank_zero_only
    def flush(self) -> None:
        while self._buffer:
            # MLflow accepts at most 1000 metrics per batch call.
            chunk, self._buffer = self._buffer[:1000], self._buffer[1000:]
            self.client.log_batch(self.run_id, metrics=chunk, synchronous=True)
        self._last_flush = time.monotonic()

    def save(self) -> None:
        """Lightning calls this after every log call; flushing here would undo the batching."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.flush()
