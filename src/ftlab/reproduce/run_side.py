"""The training process's part in a reproduce or a resume: what it records on the run."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from ftlab.names import DIFFERENCES_ARTIFACT, TAG_DIFFERENCES, TAG_RESUME_COUNT, TAG_RESUMED_FROM
from ftlab.reproduce.differences import describe, environment_differences
from ftlab.reproduce.handoff import ReproduceRequest
from ftlab.tracking.run import TrackedRun


def announce_differences(
    request: ReproduceRequest, tracking_uri: str, cfg: DictConfig, datamodule: Any
) -> list[dict[str, str]]:
    """Compare with the original run before training, and say what differs."""
    from mlflow.tracking import MlflowClient

    differences = environment_differences(
        MlflowClient(tracking_uri),
        request.run_id,
        str(cfg.paths.root_dir),
        str(cfg.trainer.accelerator),
        cfg.trainer.devices,
        datamodule.fingerprint,
    )
    print(f"Reproducing run {request.run_id}: {describe(differences)}")
    return differences


def record_differences(run: TrackedRun, differences: list[dict[str, str]]) -> None:
    run.log_dict({"differences": differences}, DIFFERENCES_ARTIFACT)
    run.set_tags({TAG_DIFFERENCES: ", ".join(d["what"] for d in differences) or "none"})


def record_resume(run: TrackedRun, checkpoint: str | None) -> dict[str, int]:
    """Count the resume on the run; returns the steps already logged per metric."""
    tags = run.client.get_run(run.run_id).data.tags
    count = int(tags.get(TAG_RESUME_COUNT, "0")) + 1
    run.set_tags({TAG_RESUME_COUNT: count, TAG_RESUMED_FROM: str(checkpoint)})
    return run.last_metric_steps()
