"""The one background thread that talks to the tracking server while a run trains.

It sends the metric spool (what training wrote to disk), samples system metrics into it, and keeps
the run's heartbeat tag fresh. The training thread never waits on the network: when the server is
slow or away, records stay in the spool and go out, in order, once it answers again.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Any

from ftlab.names import TAG_HEARTBEAT
from ftlab.tracking.spool import MetricSpool

HEARTBEAT_S = 30.0
# While training, metrics go out at most this often. A send is tens of milliseconds of Python
# (MLflow's SQLAlchemy store), each taken from the training thread by the GIL: a digits CNN run
# that sent at every epoch end and every idle second spent a millisecond of each 25 ms step on it.
SEND_INTERVAL_S = 5.0
_BACKOFF_MAX_S = 10.0
_DRAIN_POLL_S = 0.05  # while someone waits for the spool: how often it is looked at


def send_spool(tracking_uri: str, run_id: str, spool: MetricSpool, timeout_s: float) -> bool:
    """Send what a spool holds, once, without sampling or heartbeats (what an earlier process of
    the run left: before a resume, or `ftlab sync`); True when all of it was sent."""
    return RunReporter(tracking_uri, run_id, spool, heartbeat_s=None).start().close(timeout_s)


class RunReporter:
    def __init__(
        self,
        tracking_uri: str,
        run_id: str,
        spool: MetricSpool,
        system_metrics_interval: float | None = None,
        system_step: int = 0,
        heartbeat_s: float | None = HEARTBEAT_S,
        trainer_pid: int | None = None,
        trainer_cuda: bool = False,
    ) -> None:
        self.tracking_uri, self.run_id, self.spool = tracking_uri, run_id, spool
        self.system_metrics_interval = system_metrics_interval
        self.system_step = system_step
        self.heartbeat_s = heartbeat_s
        # Whose memory and GPUs system/* report (None: this process, which knows its GPUs).
        self.trainer_pid, self.trainer_cuda = trainer_pid, trainer_cuda
        self.last_error: str | None = None
        # _hurry: someone waits for the spool to be sent (drain, close); _stop: the run ends.
        self._hurry, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ftlab-reporter", daemon=True)
        self._client: Any = None
        self._sampler: Any = None

    def start(self) -> RunReporter:
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(self.tracking_uri)
        if self.system_metrics_interval:
            from ftlab.tracking.system_metrics import SystemSampler

            self._sampler = SystemSampler(self.trainer_pid, self.trainer_cuda)
        self._thread.start()
        return self

    def drain(self, timeout_s: float) -> bool:
        """Wait (the thread keeps sending) until the spool is sent; True when it was."""
        deadline = time.monotonic() + timeout_s
        self._hurry.set()
        try:
            while self.spool.pending() and self._thread.is_alive() and time.monotonic() < deadline:
                time.sleep(_DRAIN_POLL_S)
        finally:
            self._hurry.clear()
        return not self.spool.pending()

    def close(self, timeout_s: float) -> bool:
        """Stop sampling, send what is left (for up to `timeout_s`); True when all was sent."""
        self._stop.set()
        self._hurry.set()
        self._thread.join()
        deadline, backoff = time.monotonic() + timeout_s, 0.5
        while self.spool.pending():
            if self._send_some() is False:
                if time.monotonic() + backoff > deadline:
                    return False
                time.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
        return True

    # ------------------------------------------------------------ the thread
    def _loop(self) -> None:
        try:
            self._work()
        except OSError as err:  # the spool's disk is full: the run's own next write fails it
            self.last_error = str(err)
            print(
                f"warning: the metric spool cannot be written ({err}): metrics wait in it until "
                "the run ends",
                file=sys.stderr,
            )

    def _work(self) -> None:
        next_beat = next_sample = next_send = time.monotonic()
        backoff = 0.5
        while not self._stop.is_set():
            now = time.monotonic()
            if self._sampler is not None and now >= next_sample:
                self._sample_system()
                next_sample = now + float(self.system_metrics_interval or 0)
            if self.heartbeat_s is not None and now >= next_beat:
                self._beat()
                next_beat = now + self.heartbeat_s
            if now >= next_send or self._hurry.is_set():
                sent = self._send_some()
                if sent is False:  # the server is away: try again later
                    next_send = now + backoff
                    backoff = min(backoff * 2, _BACKOFF_MAX_S)
                else:
                    backoff = 0.5
                    # A backlog (after an outage) goes out batch after batch.
                    backlog = sent and self.spool.pending()
                    next_send = now if backlog else now + SEND_INTERVAL_S
            due = [next_send]
            if self.heartbeat_s is not None:
                due.append(next_beat)
            if self._sampler is not None:
                due.append(next_sample)
            wait_s = max(0.0, min(due) - time.monotonic())
            if self._hurry.is_set():  # a set event does not wait: poll, as drain does
                self._stop.wait(min(wait_s, _DRAIN_POLL_S))
            else:
                self._hurry.wait(wait_s)

    def _send_some(self) -> bool | None:
        """Send one batch of the spool: True sent, None nothing to send, False the server failed."""
        from mlflow.entities import Metric

        records, offset = self.spool.unsent(1000)  # MLflow's limit per batch call
        if not records:
            return None
        try:
            metrics = [Metric(key, value, ts, step) for key, value, ts, step in records]
            self._client.log_batch(self.run_id, metrics=metrics, synchronous=True)
        except Exception as err:  # noqa: BLE001 - any failure means: keep it, try later
            self.last_error = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
            return False
        self.spool.mark_sent(offset)
        self.last_error = None
        return True

    def _beat(self) -> None:
        # A missed heartbeat only makes the run look older.
        with contextlib.suppress(Exception):
            self._client.set_tag(self.run_id, TAG_HEARTBEAT, str(int(time.time())))

    def _sample_system(self) -> None:
        timestamp = int(time.time() * 1000)
        try:
            values = self._sampler.sample()
            self.spool.append((k, v, timestamp, self.system_step) for k, v in values.items())
            self.spool.commit()
        except OSError as err:  # a full disk under the spool, a system file unreadable
            self._sampler = None  # sending and the heartbeat go on
            print(f"warning: system metrics stop: {err}", file=sys.stderr)
            return
        self.system_step += 1
