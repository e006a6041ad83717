"""The life cycle of one tracked run: created after every input is checked, ended with an honest
status whatever happens (FINISHED, FAILED with the traceback, KILLED on Ctrl-C or SIGTERM)."""

from __future__ import annotations

import signal
import traceback
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from ftlab.errors import FtlabError
from ftlab.tracking.store import local_artifact_root, prepare_local_store

MAX_PARAM_LENGTH = 6000  # MLflow's limit for one param value
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")


class Interrupted(KeyboardInterrupt):
    """Raised by the SIGTERM handler so termination takes the same graceful path as Ctrl-C."""


class TrackedRun:
    """A context manager around one MLflow run.

    `with TrackedRun(...) as run:` creates the run (and the experiment if needed), or reopens
    `resume_run_id`; leaving the block sets FINISHED, FAILED (traceback logged as
    `error/traceback.txt`) or KILLED.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str,
        run_name: str,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        resume_run_id: str | None = None,
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
        self._previous_sigterm: Any = None
        self._interrupted = False
        self._system_monitor: Any = None

    # ------------------------------------------------------------ life cycle
    def __enter__(self) -> TrackedRun:
        if self.resuming:  # the same run continues: RUNNING again, its name and tags kept
            run = self.client.get_run(self.run_id)
            self.experiment_id, self.run_name = run.info.experiment_id, run.info.run_name
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            self.experiment_id = self._experiment_id()
            run = self.client.create_run(self.experiment_id, run_name=self.run_name, tags=self.tags)
            self.run_id = run.info.run_id
        self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def start_system_metrics(self, interval_s: float) -> None:
        """CPU, memory (and GPU when present) sampled by MLflow into this run as system/*."""
        import mlflow
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        mlflow.set_tracking_uri(self.tracking_uri)  # the monitor logs through the default client
        self._system_monitor = SystemMetricsMonitor(
            self.run_id,
            sampling_interval=interval_s,
            samples_before_logging=1,
            resume_logging=self.resuming,  # steps continue after the ones already stored
        )
        self._system_monitor.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        signal.signal(signal.SIGTERM, self._previous_sigterm or signal.SIG_DFL)
        if self._system_monitor is not None:
            self._system_monitor.finish()
        if (kind is not None and issubclass(kind, KeyboardInterrupt)) or (
            kind is not None and issubclass(kind, SystemExit) and self._interrupted
        ):
            status = "KILLED"  # Lightning's own SIGTERM exit carries code None: check this first
        elif kind is None or (
            issubclass(kind, SystemExit) and getattr(error, "code", 1) in (0, None)
        ):
            status = "FINISHED"
        else:
            status = "FAILED"
            self._log_traceback(kind, error, tb)
        self.client.set_terminated(self.run_id, status=status)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self._interrupted = True
        raise Interrupted(f"received signal {signum}")

    def mark_interrupted(self) -> None:
        """Lightning turns Ctrl-C into sys.exit(1); this tells `__exit__` it was an interruption."""
        self._interrupted = True

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

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(
            self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()], synchronous=True
        )

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        elif path.is_file():
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_dict(self, data: dict[str, Any], artifact_file: str) -> None:
        self.client.log_dict(self.run_id, data, artifact_file)

    def _log_traceback(
        self, kind: type[BaseException], error: BaseException | None, tb: TracebackType | None
    ) -> None:
        text = "".join(traceback.format_exception(kind, error, tb))
        summary = f"{kind.__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:500]
        try:
            self.log_text(text, "error/traceback.txt")
            self.set_tags({"ftlab.error": summary})
        except Exception:  # noqa: BLE001 - the status must still be set when the store misbehaves
            pass


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
    """Fail within seconds, naming the URI, when a tracking server does not answer (MLflow's
    own client retries for minutes)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(tracking_uri.rstrip("/") + "/health", timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return  # it answered: a server without /health or behind auth still exists
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise FtlabError(
            f"MLflow tracking server {tracking_uri} is unreachable ({reason}); set logger.tracking_uri or MLFLOW_TRACKING_URI, or use logger=none"
        ) from None


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
