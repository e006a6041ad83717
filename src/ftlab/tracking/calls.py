"""The MLflow operations of one tracked run, made in this process.

`TrackedRun` decides what to record and when; this class only talks to MLflow. The same calls
can be made from a helper process instead (`tracking/helper.py`, the same method names), which a
fresh `ftlab train` uses so that it never waits for MLflow to load. Arguments and results are
plain values (str, dict, list), so they cross a pipe as JSON.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ftlab.errors import FtlabError
from ftlab.redact import redact_text
from ftlab.tracking.store import local_artifact_root, prepare_local_store

MAX_PARAM_LENGTH = 6000  # MLflow's limit for one param value
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")


class MlflowCalls:
    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._client: Any = None
        self._reporter: Any = None

    @property
    def client(self) -> Any:
        """MLflow's client, created (and MLflow imported) at first use."""
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def warm_up(self) -> None:
        """Import MLflow and open the store where that creates nothing (its schema check is most
        of the cost): an existing local SQLite store, under the lock its creation holds, or a
        tracking server. A database server's store is opened when the run is created: opening an
        empty one creates its tables, and a run that fails its checks leaves no store."""
        import mlflow.tracking  # noqa: F401 - the import is the point

        local_db = self.tracking_uri.removeprefix("sqlite:///")
        with contextlib.suppress(Exception):  # the real call will say what is wrong
            if local_db != self.tracking_uri and Path(local_db).is_file():
                prepare_local_store(self.tracking_uri)
            elif self.tracking_uri.startswith(("http://", "https://")):
                self.client.search_experiments(max_results=1)

    # ------------------------------------------------------------ the run itself
    def create_run(self, experiment_name: str, run_name: str, tags: dict[str, str]) -> dict:
        prepare_local_store(self.tracking_uri)
        with _refusals_named(self.tracking_uri, experiment_name):
            experiment_id = ensure_experiment(self.client, self.tracking_uri, experiment_name)
            run = self.client.create_run(experiment_id, run_name=run_name, tags=tags)
        return {"run_id": run.info.run_id, "experiment_id": experiment_id}

    def reopen_run(self, run_id: str, experiment_name: str) -> dict:
        """The same run continues: RUNNING again, its name and tags kept."""
        prepare_local_store(self.tracking_uri)
        with _refusals_named(self.tracking_uri, experiment_name):
            run = self.client.get_run(run_id)
            self.client.update_run(run_id, status="RUNNING")
        return {"experiment_id": run.info.experiment_id, "run_name": run.info.run_name}

    def set_terminated(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status=status)

    # ------------------------------------------------------------ writing
    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        entries = [Param(key, _param_value(value)) for key, value in params.items()]
        for start in range(0, len(entries), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run_id, params=entries[start : start + 100], synchronous=True)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        entries = [RunTag(key, value) for key, value in tags.items()]
        self.client.log_batch(run_id, tags=entries, synchronous=True)

    def log_artifact(self, run_id: str, path: str, artifact_path: str | None) -> None:
        if Path(path).is_dir():
            self.client.log_artifacts(run_id, path, artifact_path)
        elif Path(path).is_file():
            self.client.log_artifact(run_id, path, artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def log_dict(self, run_id: str, data: dict[str, Any], artifact_file: str) -> None:
        self.client.log_dict(run_id, data, artifact_file)

    def last_metric_steps(self, run_id: str) -> dict[str, int]:
        """The highest step logged per metric key (what a resumed run must not log again)."""
        keys = self.client.get_run(run_id).data.metrics
        return {
            key: max(m.step for m in self.client.get_metric_history(run_id, key)) for key in keys
        }

    # ------------------------------------------------------------ the spool, while training
    def start_reporting(
        self,
        run_id: str,
        spool_dir: str,
        system_metrics_interval: float | None,
        system_step: int,
        trainer_pid: int,
        trainer_cuda: bool,
    ) -> None:
        """Start the thread that sends the spool, samples system metrics of the training process
        (`trainer_pid`, on CUDA GPUs or not) and beats the heartbeat."""
        from ftlab.tracking.reporter import RunReporter
        from ftlab.tracking.spool import MetricSpool

        self._reporter = RunReporter(
            self.tracking_uri, run_id, MetricSpool(spool_dir), system_metrics_interval,
            system_step, trainer_pid=trainer_pid, trainer_cuda=trainer_cuda,
        ).start()  # fmt: skip

    def send_pending(self, run_id: str, spool_dir: str, timeout_s: float) -> None:
        """Send what an earlier process of this run left in the spool."""
        from ftlab.tracking.reporter import send_spool
        from ftlab.tracking.spool import MetricSpool

        send_spool(self.tracking_uri, run_id, MetricSpool(spool_dir), timeout_s)

    def drain(self, timeout_s: float) -> bool:
        """Wait until the spool is sent (or `timeout_s` passed); True when it was."""
        return self._reporter.drain(timeout_s) if self._reporter is not None else True

    def stop_reporting(self, timeout_s: float) -> dict:
        """Stop sampling and send what is left; `sent` False (and the last error) when the server
        did not take it all within `timeout_s`."""
        reporter, self._reporter = self._reporter, None
        if reporter is None:
            return {"sent": True, "last_error": None}
        sent = reporter.close(timeout_s)
        return {"sent": sent, "last_error": redact_text(reporter.last_error or "")}


@contextlib.contextmanager
def _refusals_named(tracking_uri: str, experiment: str) -> Iterator[None]:
    """A server that refuses this user (a team server with logins) says so in one line."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as err:
        if err.error_code not in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
            raise
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
