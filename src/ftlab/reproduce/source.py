"""A run in the tracking store, as far as running it again needs: its config, overrides, status
and last checkpoint. Every way this can be missing is a one-line FtlabError naming the run."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ftlab.errors import FtlabError, raise_if_full
from ftlab.names import (
    CHECKPOINTS_DIR,
    HYDRA_CONFIG_ARTIFACT,
    HYDRA_OVERRIDES_ARTIFACT,
    LAST_CHECKPOINT,
    TAG_OUTPUT_DIR,
)

CHECKPOINT_ARTIFACT = f"{CHECKPOINTS_DIR}/{LAST_CHECKPOINT}"


@dataclass
class LoggedRun:
    run: Any  # mlflow.entities.Run
    config: dict[str, Any]
    overrides: list[str]

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @property
    def status(self) -> str:
        return self.run.info.status

    @property
    def output_dir(self) -> Path | None:
        recorded = self.run.data.tags.get(TAG_OUTPUT_DIR)
        return Path(recorded) if recorded else None


def fetch_run(client: Any, run_ref: str) -> LoggedRun:
    """The run `run_ref` (id or name) with the config ftlab logged for it."""
    from ftlab.tracking.listing import resolve_run

    run = resolve_run(client, run_ref)
    config = _artifact_yaml(client, run.info.run_id, HYDRA_CONFIG_ARTIFACT)
    if not isinstance(config, dict):
        raise FtlabError(
            f"run {run.info.run_id} has no logged config ({HYDRA_CONFIG_ARTIFACT}): it was not made by "
            "`ftlab train`, so it cannot be run again"
        )
    overrides = _artifact_yaml(client, run.info.run_id, HYDRA_OVERRIDES_ARTIFACT) or []
    return LoggedRun(run=run, config=config, overrides=[str(o) for o in overrides])


def last_checkpoint(client: Any, logged: LoggedRun, download_to: Path) -> Path:
    """The run's last checkpoint: in its output folder when still there, else its artifact."""
    if logged.output_dir is not None:
        local = logged.output_dir / CHECKPOINTS_DIR / LAST_CHECKPOINT
        if local.is_file():
            return local
    try:
        return Path(client.download_artifacts(logged.run_id, CHECKPOINT_ARTIFACT, str(download_to)))
    except Exception:  # noqa: BLE001 - absent, deleted or unreadable: the same answer
        where = (
            logged.output_dir / CHECKPOINTS_DIR / LAST_CHECKPOINT
            if logged.output_dir
            else "no folder"
        )
        raise FtlabError(
            f"run {logged.run_id} has no last checkpoint to resume from: {where} is gone and the "
            f"run has no {CHECKPOINT_ARTIFACT} artifact"
        ) from None


def artifact_text(client: Any, run_id: str, path: str) -> str | None:
    """The text of one artifact of the run, or None when it is not there."""
    with tempfile.TemporaryDirectory() as scratch:
        try:
            local = client.download_artifacts(run_id, path, scratch)
        except Exception as err:  # noqa: BLE001 - a missing artifact raises different errors per store
            raise_if_full(err, scratch)  # a full temp folder is no missing artifact: CLI names it
            return None
        return Path(local).read_text()


def _artifact_yaml(client: Any, run_id: str, path: str) -> Any:
    text = artifact_text(client, run_id, path)
    return None if text is None else yaml.safe_load(text)
