"""The life cycle of one tracked run: created after every input is checked, ended with an honest
status whatever happens (FINISHED, FAILED with the traceback, KILLED on Ctrl-C or SIGTERM; the
decision is `ftlab.stopping.final_status`).

While it is open, a reporter sends the metric spool, samples system metrics and beats the
heartbeat in the background, so the training thread never waits on the tracking server.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

from ftlab.errors import FtlabError
from ftlab.names import TAG_ERROR, TRACEBACK_ARTIFACT
from ftlab.redact import redact_text
from ftlab.stopping import STOP, final_status
from ftlab.tracking.calls import MlflowCalls
from ftlab.tracking.spool import MetricSpool

SEND_TIMEOUT_S = 120.0  # at the end, how long to wait for the spool to reach a server that is away


class TrackedRun:
    """A context manager around one MLflow run.

    `with TrackedRun(...) as run:` creates the run (and the experiment if needed), or reopens
    `resume_run_id`; leaving the block sends what is left of the spool and sets the final status.
    Its MLflow calls are made in this process, or by ftlab's tracking helper process when one is
    given as `calls` (tracking/helper.py); `client` is always this process's own.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str,
        run_name: str,
        spool_dir: str | Path,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        resume_run_id: str | None = None,
        send_timeout_s: float = SEND_TIMEOUT_S,
        calls: Any = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self._own_calls = MlflowCalls(tracking_uri)
        self.calls = calls if calls is not None else self._own_calls
        self.experiment_name, self.run_name = experiment_name, run_name
        self.tags = dict(tags or {})
        if description:
            self.tags["mlflow.note.content"] = description
        self.run_id: str | None = resume_run_id
        self.resuming = resume_run_id is not None
        self.experiment_id: str | None = None
        self.spool = MetricSpool(spool_dir)
        self.send_timeout_s = send_timeout_s
        self.reporting = False
        self.offline = False  # the server went away: the end is recorded in the spool

    @property
    def client(self) -> Any:
        """MLflow's client in this process (MLflow is imported at first use)."""
        return self._own_calls.client

    # ------------------------------------------------------------ life cycle
    def __enter__(self) -> TrackedRun:
        if self.resuming:  # the same run continues: RUNNING again, its name and tags kept
            opened = self.calls.reopen_run(self.run_id, self.experiment_name)
            self.experiment_id, self.run_name = opened["experiment_id"], opened["run_name"]
        else:
            created = self.calls.create_run(self.experiment_name, self.run_name, self.tags)
            self.run_id, self.experiment_id = created["run_id"], created["experiment_id"]
        try:
            STOP.install()
            self.spool.write_run(
                {"run_id": self.run_id, "tracking_uri": redact_text(self.tracking_uri)}
            )
        except BaseException:  # the run exists: it ends here (a full disk, a signal)
            self.__exit__(*sys.exc_info())
            raise
        return self

    def start_reporting(self, system_metrics_interval: float | None, cuda: bool = False) -> None:
        """Start sending the spool in the background (and sampling system/* metrics when asked;
        `cuda`: the run trains on CUDA GPUs, whose use is sampled too)."""
        system_step = 1 + max(
            (s for k, s in self.last_metric_steps().items() if k.startswith("system/")),
            default=-1,
        ) if self.resuming else 0  # fmt: skip
        self.calls.start_reporting(
            self.run_id, str(self.spool.directory), system_metrics_interval, system_step,
            os.getpid(), cuda,
        )  # fmt: skip
        self.reporting = True

    def wait_until_sent(self) -> None:
        """Block until the spool is on the server (or the send timeout passed)."""
        self.spool.commit()
        if self.reporting:
            self.calls.drain(self.send_timeout_s)

    def send_pending(self) -> None:
        """Send what an earlier process of this run left in the spool (before a resume reads the
        steps already stored)."""
        if self.spool.pending():
            self.calls.send_pending(self.run_id, str(self.spool.directory), self.send_timeout_s)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        status = final_status(kind, error, STOP.requested)
        STOP.uninstall()
        # The status reaches the server whatever fails on the way: a full disk makes the spool's
        # own writes fail too, and a run must not stay RUNNING.
        recorded = False
        try:
            if status == "FAILED":
                self._log_traceback(kind, error, tb)
            self._finish_sending()
            self.spool.write_run({"status": status})
            recorded = True
        except BaseException as ending:  # a Ctrl-C here is KILLED, a full disk FAILED
            status = (
                final_status(type(ending), ending, STOP.requested)
                if status == "FINISHED"
                else status
            )
            raise
        finally:
            if not self.offline or not recorded:  # offline: `ftlab sync` sets what the spool holds
                self._set_terminated(status)

    def _set_terminated(self, status: str) -> None:
        try:
            self.calls.set_terminated(self.run_id, status)
        except Exception as err:  # noqa: BLE001 - the server is away: say how to finish later
            print(
                f"warning: could not set run {self.run_id} {status} on {redact_text(self.tracking_uri)} "
                f"({redact_text(str(err).splitlines()[0][:160])}); {self._sync_hint()}",
                file=sys.stderr,
            )

    def _finish_sending(self) -> None:
        if not self.reporting:
            return
        try:
            self.spool.commit()
        finally:  # the reporter stops even when the spool's disk is full
            self.reporting = False
            outcome = self._stop_reporting()
        if not outcome["sent"]:
            print(
                f"warning: the tracking server did not take all metrics of run {self.run_id} "
                f"({outcome['last_error']}); they are kept on disk: {self._sync_hint()}",
                file=sys.stderr,
            )

    def _stop_reporting(self) -> dict[str, Any]:
        try:
            return self.calls.stop_reporting(self.send_timeout_s)
        except Exception as err:  # noqa: BLE001 - the helper is gone: the spool keeps it all
            return {"sent": False, "last_error": redact_text(str(err))}

    def _sync_hint(self) -> str:
        return f"send them later with: ftlab sync {self.spool.directory.parent}"

    # ------------------------------------------------------------ writing
    def log_params(self, params: dict[str, Any]) -> None:
        self.calls.log_params(self.run_id, {key: str(value) for key, value in params.items()})

    def last_metric_steps(self) -> dict[str, int]:
        """The highest step logged per metric key (what a resumed run must not log again)."""
        return self.calls.last_metric_steps(self.run_id)

    # ------------------------------------------------------------ the end, online or not
    def go_offline_if_away(self) -> bool:
        """Before the end's uploads: when the server does not answer, what is left to record
        (tags, artifacts, the model) goes to the spool for `ftlab sync` instead of waiting on a
        server that may never come back. True when offline."""
        if self.offline:
            return True
        try:
            check_reachable(self.tracking_uri, timeout_s=5)
        except FtlabError:
            self.offline = True
            print(
                f"warning: the tracking server {redact_text(self.tracking_uri)} is away: run "
                f"{self.run_id}'s artifacts, model and status are kept on disk; "
                f"{self._sync_hint()}",
                file=sys.stderr,
            )
        return self.offline

    def set_tags(self, tags: dict[str, Any]) -> None:
        if self.offline:
            return self.spool.add_tags({k: str(v) for k, v in tags.items()})
        self.calls.set_tags(self.run_id, {k: str(v) for k, v in tags.items()})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if self.offline:
            return self.spool.keep_artifact(path, artifact_path)
        self.calls.log_artifact(self.run_id, str(path.absolute()), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        if self.offline:
            return self.spool.keep_text(text, artifact_file)
        self.calls.log_text(self.run_id, text, artifact_file)

    def log_dict(self, data: dict[str, Any], artifact_file: str) -> None:
        if self.offline:
            return self.spool.keep_text(json.dumps(data, indent=2), artifact_file)
        self.calls.log_dict(self.run_id, data, artifact_file)

    def _log_traceback(
        self, kind: type[BaseException], error: BaseException | None, tb: TracebackType | None
    ) -> None:
        text = redact_text("".join(traceback.format_exception(kind, error, tb)))
        first = str(error).splitlines()[0] if str(error) else ""
        summary = redact_text(f"{kind.__name__}: {first}")[:500]
        try:
            self.log_text(text, TRACEBACK_ARTIFACT)
            self.set_tags({TAG_ERROR: summary})
        except Exception:  # noqa: BLE001 - the status must still be set when the store misbehaves
            pass


def check_reachable(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Fail within seconds, naming the URI, when a tracking server does not answer, is not an
    MLflow server, or refuses the login (MLflow's own client retries for minutes)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    shown = redact_text(tracking_uri)
    address, headers = _without_credentials(tracking_uri)
    probe = address.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
    request = urllib.request.Request(probe, headers={**_auth_headers(), **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return
    except urllib.error.HTTPError as err:
        if err.code == 401:
            raise FtlabError(
                f"MLflow tracking server {shown} refused the login (HTTP 401): set "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
            ) from None
        if err.code in (404, 405):
            raise FtlabError(
                f"{shown} answers but is not an MLflow tracking server (HTTP {err.code} at "
                "/api/2.0/mlflow/experiments/search); check logger.tracking_uri or MLFLOW_TRACKING_URI"
            ) from None
        return  # it is MLflow; a 403 here may still allow this run's own experiment
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise FtlabError(
            f"MLflow tracking server {shown} is unreachable ({reason}); set logger.tracking_uri or "
            "MLFLOW_TRACKING_URI, or use logger=none"
        ) from None


def _without_credentials(uri: str) -> tuple[str, dict[str, str]]:
    """`http://user:pw@host` as urllib needs it: the address without the user part, and the
    Basic login it carried (MLflow's client sends it the same way)."""
    import urllib.parse

    parts = urllib.parse.urlsplit(uri)
    if parts.username is None:
        return uri, {}
    host = parts.netloc.rsplit("@", 1)[1]
    user, password = (urllib.parse.unquote(p) for p in (parts.username, parts.password or ""))
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), _basic_login(user, password)


def _auth_headers() -> dict[str, str]:
    """The credentials MLflow's client would send, from the same environment variables."""
    import os

    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user, password = (
        os.environ.get("MLFLOW_TRACKING_USERNAME"),
        os.environ.get("MLFLOW_TRACKING_PASSWORD"),
    )
    if user and password:
        return _basic_login(user, password)
    return {}


def _basic_login(user: str, password: str) -> dict[str, str]:
    import base64

    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}
