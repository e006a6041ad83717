"""Logging the fine-tuned model to MLflow so `mlflow.pyfunc.load_model(uri).predict(raw)` works."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import ftlab

MODEL_NAME = "model"
_RUNTIME_PACKAGES = (
    "torch",
    "torchvision",
    "transformers",
    "timm",
    "safetensors",
    "hydra-core",
    "omegaconf",
    "pandas",
    "numpy",
    "mlflow",
)


def pip_requirements() -> list[str]:
    """What the model needs at load time, pinned to this environment (no slow inference)."""
    pins = []
    for name in _RUNTIME_PACKAGES:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def log_pyfunc_model(
    run_id: str, tracking_uri: str, model_dir: Path, input_example: Any, predictor: Any
) -> Any:
    """Log `model_dir` as an MLflow pyfunc model of `run_id`; returns the ModelInfo.

    The signature comes from running the real predictor on the example, so it matches what
    `predict` returns. ftlab's own source travels in `code_paths`: the model loads where
    ftlab is not installed.
    """
    import mlflow
    from mlflow.models import Model, infer_signature

    mlflow.set_tracking_uri(tracking_uri)
    signature = infer_signature(input_example, predictor.predict(input_example))
    # Model.log takes the run id directly: resuming the run with mlflow.start_run would end it
    # FINISHED on exit, before ftlab knows how the run ends.
    return Model.log(
        artifact_path=None,
        name=MODEL_NAME,
        flavor=mlflow.pyfunc,
        run_id=run_id,
        python_model=str(Path(__file__).with_name("pyfunc_model.py")),
        artifacts={"ftlab_model": str(model_dir)},
        code_paths=[str(Path(ftlab.__file__).parent)],
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements(),
        flavor_name="python_function",
    )


def register(model_uri: str, name: str, tracking_uri: str) -> str:
    """Register a logged model under `name`; returns the new version."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return str(mlflow.register_model(model_uri, name).version)
