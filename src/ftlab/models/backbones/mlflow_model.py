"""A backbone from an earlier run's logged MLflow model (`runs:/ID/model`, `models:/NAME/VERSION`,
or a logged-model id `m-...`)."""

from __future__ import annotations

from pathlib import Path

from ftlab.errors import FtlabError
from ftlab.models.backbones.base import Backbone
from ftlab.models.package import load_backbone
from ftlab.tracking.store import resolve_tracking_uri


def backbone_from_mlflow(uri: str, tracking_uri: str | None = None) -> Backbone:
    import mlflow

    mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
    model_uri = f"models:/{uri}" if uri.startswith("m-") else uri
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    except Exception as err:  # noqa: BLE001 - MLflow raises several types for a missing model
        raise FtlabError(
            f"model.backbone.uri: no MLflow model at {uri} ({str(err).splitlines()[0][:160]})"
        ) from None
    found = sorted(local.rglob("model.json"))
    if not found:
        raise FtlabError(
            f"model.backbone.uri: {uri} is not an ftlab model (no ftlab_model/model.json)"
        )
    backbone, _ = load_backbone(found[0].parent)
    return backbone
