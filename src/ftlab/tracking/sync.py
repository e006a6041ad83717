"""`ftlab sync RUN_DIR`: send what a run kept on disk because its tracking server was away (its
spool: metrics, tags, artifacts, the model), then set the status it ended with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftlab.errors import FtlabError
from ftlab.names import TAG_MODEL_URI
from ftlab.tracking.reporter import send_spool
from ftlab.tracking.spool import ARTIFACTS, SPOOL_DIR, MetricSpool

_FINAL = ("FINISHED", "FAILED", "KILLED")


@dataclass
class _KeptRun:
    """What the model logger needs of a run (a TrackedRun's attributes), for a run being synced."""

    run_id: str
    tracking_uri: str
    experiment_id: str
    client: Any
    spool: MetricSpool


def sync_command(run_dir: str, tracking_uri: str | None, timeout_s: float = 300) -> int:
    from mlflow.tracking import MlflowClient

    from ftlab.redact import REDACTED, redact_text
    from ftlab.tracking.run import check_reachable
    from ftlab.tracking.store import resolve_tracking_uri

    spool = MetricSpool(Path(run_dir) / SPOOL_DIR)
    facts = spool.read_run()
    if not facts.get("run_id"):
        raise FtlabError(f"{run_dir}: no run to sync here (no {SPOOL_DIR}/run.json)")
    stored_uri = str(facts.get("tracking_uri") or "")
    # A stored URI with its password redacted cannot be used as it is: take the environment's.
    uri = resolve_tracking_uri(tracking_uri or (None if REDACTED in stored_uri else stored_uri))
    check_reachable(uri)
    run_id = str(facts["run_id"])
    client = MlflowClient(uri)
    sent = []
    if spool.pending():
        if not send_spool(uri, run_id, spool, timeout_s):
            raise FtlabError(
                f"the tracking server {redact_text(uri)} did not take run {run_id}'s metrics"
            )
        sent.append("metrics")
    sent += _send_the_end(
        client, _KeptRun(run_id, uri, client.get_run(run_id).info.experiment_id, client, spool)
    )
    status = facts.get("status")
    if status in _FINAL and client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, status=status)
        sent.append(f"status {status}")
    print(f"run {run_id}: {', '.join(sent) if sent else 'nothing left to send'}")
    return 0


def _send_the_end(client: Any, run: _KeptRun) -> list[str]:
    """Tags, artifacts and the model the run's end kept in the spool; each sent once."""
    import shutil

    from ftlab.tracking.model_export import log_kept_model

    sent = []
    tags = run.spool.tags()
    if tags:
        for key, value in tags.items():
            client.set_tag(run.run_id, key, value)
        (run.spool.directory / "tags.json").unlink()
        sent.append("tags")
    artifacts = run.spool.directory / ARTIFACTS
    if artifacts.is_dir() and any(artifacts.iterdir()):
        client.log_artifacts(run.run_id, str(artifacts))
        shutil.rmtree(artifacts)
        sent.append("artifacts")
    facts = log_kept_model(run)
    if facts:
        client.set_tag(run.run_id, TAG_MODEL_URI, facts["model_uri"])
        sent.append(f"model {facts['model_uri']}")
    return sent
