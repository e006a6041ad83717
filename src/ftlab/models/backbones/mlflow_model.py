"""A backbone from an earlier run's logged MLflow model (`runs:/ID/model`, `models:/NAME/VERSION`,
or a logged-model id `m-...`). Only what the model folder's `model.json` names from ftlab's fixed
table of backbone classes is built (`ftlab.models.registry`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ftlab.errors import FtlabError, raise_if_full
from ftlab.models.backbones.base import Backbone
from ftlab.models.model_folder import load_backbone
from ftlab.names import POINTER_URI_KEY


def backbone_from_mlflow(uri: str, tracking_uri: str | None = None) -> Backbone:
    from ftlab.config.store_uri import resolve_tracking_uri

    store = resolve_tracking_uri(tracking_uri)
    model_uri = f"models:/{uri}" if uri.startswith("m-") else uri
    # The backbone is read into memory (weights, tokenizer, config), so its downloaded files go
    # with this call: each run would otherwise leave a copy of the model in the temp folder.
    with tempfile.TemporaryDirectory(prefix="ftlab-backbone-") as folder:
        scratch = Path(folder)
        local = _download(model_uri, store, scratch / "model", uri)
        pointed = pointed_model_uri(local)  # runs:/ID/model: a pointer to the run's logged model
        if pointed is not None:
            local = _download(pointed, store, scratch / "pointed", uri)
        found = sorted(local.rglob("model.json"))
        if not found:
            raise FtlabError(
                f"model.backbone.uri: {uri} is not an ftlab model (no ftlab_model/model.json)"
            )
        backbone, _ = load_backbone(
            found[0].parent, f"model.backbone.uri: {uri}: its model.json backbone"
        )
    return backbone


def _download(model_uri: str, tracking_uri: str, destination: Path, shown: str) -> Path:
    import mlflow

    scratch = destination.parent  # in the temp folder: what a full disk names
    try:
        destination.mkdir(parents=True)
        return Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=_artifact_location(model_uri, tracking_uri),
                dst_path=str(destination),
                tracking_uri=tracking_uri,
            )
        )
    except Exception as err:  # noqa: BLE001 - MLflow raises several types for a missing model
        raise_if_full(err, scratch)  # a full temp folder, not a missing model: train names it
        raise FtlabError(
            f"model.backbone.uri: no MLflow model at {shown} ({str(err).splitlines()[0][:160]})"
        ) from None


def _artifact_location(model_uri: str, tracking_uri: str) -> str:
    """Where a `models:/` URI's files are, asked of this store: MLflow would resolve it through
    the process-wide tracking and registry URIs instead of the one given."""
    if not model_uri.startswith("models:/"):
        return model_uri  # runs:/ and plain artifact URIs take tracking_uri as given
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    reference = model_uri.removeprefix("models:/").strip("/")
    if reference.startswith("m-") and "/" not in reference:
        return client.get_logged_model(reference).artifact_location
    name, _, version = reference.rpartition("/")
    if not name and "@" in reference:
        name, _, alias = reference.partition("@")
        version = client.get_model_version_by_alias(name, alias).version
    return client.get_model_version_download_uri(name, version)


def pointed_model_uri(folder: Path) -> str | None:
    """The `models:/m-...` URI a downloaded pointer model (`runs:/ID/model`, written by
    `tracking.model_export`) stands for."""
    import yaml

    mlmodel = folder / "MLmodel"
    if not mlmodel.is_file():
        return None
    flavor = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {}).get("python_function")
    flavor = flavor or {}
    # MLflow writes a models-from-code `model_config` as the flavor's `config`.
    settings = flavor.get("config") or flavor.get("model_config") or {}
    uri = settings.get(POINTER_URI_KEY)
    return str(uri) if isinstance(uri, str) and uri.startswith("models:/m-") else None
