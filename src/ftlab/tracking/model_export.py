"""Logging the fine-tuned model to MLflow so `mlflow.pyfunc.load_model(uri).predict(raw)` works.

The logged model lives in its run's experiment, named after the run (or the registered name), with
the run's final val/test metrics linked to it. MLflow 3 finds `runs:/ID/NAME` by the model's name,
so the run also carries a small pointer model under `model/` that loads the real one: the
documented `runs:/ID/model` keeps working beside `models:/m-...` and `models:/NAME/VERSION`.
"""

from __future__ import annotations

import re
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import ftlab
from ftlab.names import POINTER_MODEL, POINTER_URI_KEY

_COMMON_PACKAGES = ("torch", "safetensors", "numpy", "pandas", "mlflow", "pyyaml")
_FAMILY_PACKAGES = {  # what loading a backbone of this family imports
    "ftlab.models.backbones.hf.HFTextBackbone": ("transformers", "tokenizers"),
    "ftlab.models.backbones.timm.TimmBackbone": ("timm", "torchvision"),
    "ftlab.models.backbones.torchvision.TorchvisionBackbone": ("torchvision",),
    "ftlab.models.backbones.digits_cnn.DigitsCNN": (),
}


def pip_requirements(backbone_target: str, with_adapters: bool = False) -> list[str]:
    """What this model needs at load time, pinned to this environment: the common packages plus
    its backbone family's (a digits CNN does not list transformers)."""
    names = [*_COMMON_PACKAGES, *_FAMILY_PACKAGES.get(backbone_target, ())]
    if with_adapters:
        names.append("peft")
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def log_pyfunc_model(
    run: Any, name: str, model_dir: Path, input_example: Any, predictor: Any, step: int
) -> Any:
    """Log `model_dir` as an MLflow pyfunc model of `run`, in the run's experiment, linking the
    metrics logged at `step` (the final ones) to it; returns the ModelInfo.

    Text models get a signature from running the real predictor on the example. Image models get
    none: they take (N, H, W), (N, C, H, W) or (N, H, W, C) arrays, which no one tensor signature
    describes, and check the shape themselves. ftlab's own source travels in `code_paths`: the
    model loads where ftlab is not installed.
    """
    import mlflow
    from mlflow.models import Model, infer_signature

    mlflow.set_tracking_uri(run.tracking_uri)
    mlflow.set_experiment(experiment_id=run.experiment_id)  # a logged model joins the active one
    text = predictor.recipe.modality == "text"
    signature = infer_signature(input_example, predictor.predict(input_example)) if text else None
    backbone = predictor.recipe.backbone
    requirements = pip_requirements(str(backbone.get("_target_")), bool(backbone.get("lora")))
    # Model.log takes the run id directly: resuming the run with mlflow.start_run would end it
    # FINISHED on exit, before ftlab knows how the run ends.
    info = Model.log(
        artifact_path=None,
        name=logged_model_name(name),
        flavor=mlflow.pyfunc,
        run_id=run.run_id,
        step=step,
        python_model=str(Path(__file__).with_name("pyfunc_model.py")),
        artifacts={"ftlab_model": str(model_dir)},
        code_paths=[str(Path(ftlab.__file__).parent)],
        signature=signature if text else False,  # False: none, and no attempt to infer one
        input_example=input_example if text else None,
        pip_requirements=requirements,
        flavor_name="python_function",
    )
    _log_pointer(run, info.model_uri, requirements, signature if text else False)
    return info


def logged_model_name(name: str) -> str:
    """MLflow refuses / : . % and quotes in logged-model names (a run name has `lr0.003`)."""
    return re.sub(r"[/:.%\"']", "-", name)


def _log_pointer(run: Any, model_uri: str, requirements: list[str], signature: Any) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / POINTER_MODEL
        mlflow.pyfunc.save_model(
            str(path),
            python_model=str(Path(__file__).with_name("pyfunc_pointer.py")),
            model_config={POINTER_URI_KEY: model_uri},
            pip_requirements=requirements,
            signature=signature,
        )
        run.client.log_artifacts(run.run_id, str(path), POINTER_MODEL)


def keep_model(spool: Any, model_dir: Path, example: Any, name: str, register_as: Any) -> None:
    """The model folder, its input example and how to log it, in the run's spool (the server is
    away); `log_kept_model` logs it later."""
    import json
    import shutil

    import numpy as np

    folder = spool.directory / "model"
    shutil.copytree(model_dir, folder / "ftlab_model", dirs_exist_ok=True)
    if isinstance(example, list):
        (folder / "example.json").write_text(json.dumps(example))
    else:
        np.save(folder / "example.npy", np.asarray(example))
    meta = {"name": name, "register_as": register_as, "logged": False}
    (folder / "model.json").write_text(json.dumps(meta))


def log_kept_model(run: Any) -> dict[str, str]:
    """Log the model a run kept in its spool while its server was away (`ftlab sync`)."""
    import json

    import numpy as np

    from ftlab.models.model_folder import Predictor

    folder = run.spool.directory / "model"
    meta_path = folder / "model.json"
    if not meta_path.is_file() or json.loads(meta_path.read_text()).get("logged"):
        return {}
    meta = json.loads(meta_path.read_text())
    example_json = folder / "example.json"
    example = (
        json.loads(example_json.read_text())
        if example_json.is_file()
        else np.load(folder / "example.npy")
    )
    model_dir = folder / "ftlab_model"
    info = log_pyfunc_model(
        run, meta["name"], model_dir, example, Predictor(model_dir), final_step(run)
    )
    facts = {"model_uri": info.model_uri}
    if meta.get("register_as"):
        version = register(info.model_uri, str(meta["register_as"]), run.tracking_uri)
        facts["registered"] = f"{meta['register_as']} version {version}"
    meta_path.write_text(json.dumps({**meta, "logged": True}))
    return facts


def final_step(run: Any) -> int:
    """The step of the run's final test (or validation) metrics."""
    metrics = run.client.get_run(run.run_id).data.metrics
    for prefix in ("test/", "val/"):
        keys = [k for k in metrics if k.startswith(prefix)]
        if keys:
            return max(m.step for m in run.client.get_metric_history(run.run_id, keys[0]))
    return 0


def register(model_uri: str, name: str, tracking_uri: str) -> str:
    """Register a logged model under `name`; returns the new version."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return str(mlflow.register_model(model_uri, name).version)
