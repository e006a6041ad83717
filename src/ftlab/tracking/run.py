"""The life cycle of one tracked run: created after every input is checked, ended with an honest
status whatever happens (FINISHED, FAILED with the traceback, KILLED on Ctrl-C or SIGTERM; the
decision is `ftlab.stopping.final_status`).

While it is open, a reporter thread sends the metric spool, samples system metrics and beats the
heartbeat, so the training thread never waits on the tracking server.
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from ftlab.errors import FtlabError
from ftlab.names import TAG_ERROR, TRACEBACK_ARTIFACT
from ftlab.redact import redact_text
from ftlab.stopping import STOP, final_status
from ftlab.tracking.reporter import RunReporter
from ftlab.tracking.spool import MetricSpool
from ftlab.tracking.store import local_artifact_root, prepare_local_store

MAX_PARAM_LENGTH = 6000  # MLflow's limit for one param value
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")
SEND_TIMEOUT_S = 120.0  # at the end, how long to wait for the spool to reach a server that is away


class TrackedRun:
    """A context manager around one MLflow run.

    `with TrackedRun(...) as run:` creates the run (and the experiment if needed), or reopens
    `resume_run_id`; leaving the block sends what is left of the spool and sets the final status.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str,
        run_name: str,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        resume_run_id: str | None = None,
        spool_dir: str | Path | None = None,
        send_timeout_s: float = SEND_TIMEOUT_S,
    ) -> None:
        from mlflow.tracking import MlflowClient

        prepare_local_store(tracking_uri)
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        self.experiment_name, self.run_name = experiment_name, run_name
        self.tags = dict(tags or {})
        if description:
            self.tags["mlflow.note.content"] = description
        self.run_id: str | None = resume_run_id
        self.resuming = resume_run_id is not None
        self.experiment_id: str | None = None
        self.spool = MetricSpool(spool_dir) if spool_dir is not None else None
        self.send_timeout_s = send_timeout_s
        self.reporter: RunReporter | None = None
        self.offline = False  # the server went away: the end is recorded in the spool

    # ------------------------------------------------------------ life cycle
    def __enter__(self) -> TrackedRun:
        with _refusals_named(self.tracking_uri, self.experiment_name):
            if self.resuming:  # the same run continues: RUNNING again, its name and tags kept
                run = self.client.get_run(self.run_id)
                self.experiment_id, self.run_name = run.info.experiment_id, run.info.run_name
                self.client.update_run(self.run_id, status="RUNNING")
            else:
                self.experiment_id = self._experiment_id()
                run = self.client.create_run(
                    self.experiment_id, run_name=self.run_name, tags=self.tags
                )
                self.run_id = run.info.run_id
        STOP.install()
        if self.spool is not None:
            self.spool.write_run(
                {"run_id": self.run_id, "tracking_uri": redact_text(self.tracking_uri)}
            )
        return self

    def start_reporting(self, system_metrics_interval: float | None) -> RunReporter:
        """Start the thread that sends the spool (and samples system/* metrics when asked)."""
        system_step = 1 + max(
            (s for k, s in self.last_metric_steps().items() if k.startswith("system/")),
            default=-1,
        ) if self.resuming else 0  # fmt: skip
        self.reporter = RunReporter(
            self.tracking_uri, self.run_id, self.spool or MetricSpool(_scratch_spool()),
            system_metrics_interval, system_step,
        ).start()  # fmt: skip
        return self.reporter

    def wait_until_sent(self) -> None:
        """Block until the spool is on the server (or the send timeout passed)."""
        if self.spool is not None:
            self.spool.commit()
        if self.reporter is not None:
            self.reporter.drain(self.send_timeout_s)

    def send_pending(self) -> None:
        """Send what an earlier process of this run left in the spool (before a resume reads the
        steps already stored)."""
        if self.spool is not None and self.spool.pending():
            sender = RunReporter(self.tracking_uri, self.run_id, self.spool, heartbeat_s=None)
            sender.start().close(self.send_timeout_s)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        status = final_status(kind, error, STOP.requested)
        STOP.uninstall()
        if status == "FAILED":
            self._log_traceback(kind, error, tb)
        self._finish_sending()
        if self.spool is not None:
            self.spool.write_run({"status": status})
        if self.offline:
            return  # `ftlab sync` sets it
        try:
            self.client.set_terminated(self.run_id, status=status)
        except Exception as err:  # noqa: BLE001 - the server is away: say how to finish later
            print(
                f"warning: could not set run {self.run_id} {status} on {redact_text(self.tracking_uri)} "
                f"({str(err).splitlines()[0][:160]}); {self._sync_hint()}",
                file=sys.stderr,
            )

    def _finish_sending(self) -> None:
        if self.reporter is None:
            return
        if self.spool is not None:
            self.spool.commit()
        if not self.reporter.close(self.send_timeout_s):
            print(
                f"warning: the tracking server did not take all metrics of run {self.run_id} "
                f"({self.reporter.last_error}); they are kept on disk: {self._sync_hint()}",
                file=sys.stderr,
            )

    def _sync_hint(self) -> str:
        folder = self.spool.directory.parent if self.spool is not None else "RUN_DIR"
        return f"send them later with: ftlab sync {folder}"

    def _experiment_id(self) -> str:
        return ensure_experiment(self.client, self.tracking_uri, self.experiment_name)

    # ------------------------------------------------------------ writing
    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        entries = [Param(key, _param_value(value)) for key, value in params.items()]
        for start in range(0, len(entries), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(
                self.run_id, params=entries[start : start + 100], synchronous=True
            )

    def last_metric_steps(self) -> dict[str, int]:
        """The highest step logged per metric key (what a resumed run must not log again)."""
        keys = self.client.get_run(self.run_id).data.metrics
        return {
            key: max(m.step for m in self.client.get_metric_history(self.run_id, key))
            for key in keys
        }

    # ------------------------------------------------------------ the end, online or not
    def go_offline_if_away(self) -> bool:
        """Before the end's uploads: when the server does not answer, what is left to record
        (tags, artifacts, the model) goes to the spool for `ftlab sync` instead of waiting on a
        server that may never come back. True when offline."""
        if self.spool is None or self.offline:
            return self.offline
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
        from mlflow.entities import RunTag

        self.client.log_batch(
            self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()], synchronous=True
        )

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if self.offline:
            return self.spool.keep_artifact(path, artifact_path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        elif path.is_file():
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        if self.offline:
            return self.spool.keep_text(text, artifact_file)
        self.client.log_text(self.run_id, text, artifact_file)

    def log_dict(self, data: dict[str, Any], artifact_file: str) -> None:
        if self.offline:
            return self.spool.keep_text(json.dumps(data, indent=2), artifact_file)
        self.client.log_dict(self.run_id, data, artifact_file)

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


@contextlib.contextmanager
def _refusals_named(tracking_uri: str, experiment: str) -> Iterator[None]:
    """A server that refuses this user (a team server with logins) says so in one line."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as err:
        if err.error_code not in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
            raise
        import os

        user = os.environ.get("MLFLOW_TRACKING_USERNAME", "this user")
        raise FtlabError(
            f"MLflow tracking server {redact_text(tracking_uri)} refused {user} writing to "
            f"experiment '{experiment}' ({err.error_code}): ask its owner for EDIT permission, "
            "or set experiment_name to one of your own"
        ) from None


def ensure_experiment(client: Any, tracking_uri: str, name: str) -> str:
    """The id of experiment `name`, created (with ftlab's artifact location and the
    model-training kind tag) when missing; a deleted one is a clear error."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(
            name,
            artifact_location=_experiment_artifacts(tracking_uri, name),
            tags=dict([EXPERIMENT_KIND_TAG]),
        )
    if experiment.lifecycle_stage == "deleted":
        raise FtlabError(
            f"experiment_name: experiment '{name}' is deleted in {tracking_uri}; restore it "
            f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) or pick another name"
        )
    return experiment.experiment_id


def check_reachable(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Fail within seconds, naming the URI, when a tracking server does not answer, is not an
    MLflow server, or refuses the login (MLflow's own client retries for minutes)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    shown = redact_text(tracking_uri)
    probe = tracking_uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
    request = urllib.request.Request(probe, headers=_auth_headers())
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


def _auth_headers() -> dict[str, str]:
    """The credentials MLflow's client would send, from the same environment variables."""
    import base64
    import os

    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user, password = (
        os.environ.get("MLFLOW_TRACKING_USERNAME"),
        os.environ.get("MLFLOW_TRACKING_PASSWORD"),
    )
    if user and password:
        pair = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
    return {}


def _param_value(value: Any) -> str:
    text = str(value)
    if len(text) > MAX_PARAM_LENGTH:
        # Never a silent cut: the full config is an artifact (config.yaml) and the param says so.
        return text[: MAX_PARAM_LENGTH - 40] + " …[cut; full value in config.yaml]"
    return text


def _experiment_artifacts(tracking_uri: str, experiment_name: str) -> str | None:
    root = local_artifact_root(tracking_uri)
    if root is None:
        return None
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment_name)
    return f"{root}/{safe}"


def _scratch_spool() -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix="ftlab-spool-"))
