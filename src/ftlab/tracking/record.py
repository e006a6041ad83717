"""What a run records, at its start and at its end.

Start: identity tags, every param of the resolved config (redacted, full length), the config
files, the environment and the git diff. End: the best checkpoint, the fine-tuned model as an
MLflow pyfunc model, the test-set report, and an optional registration.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from ftlab import __version__
from ftlab.tracking.environment import requirements_txt
from ftlab.tracking.identity import git_diff, git_state, machine_tags
from ftlab.tracking.redact import redact_override, redact_params, redact_tree, secret_values
from ftlab.tracking.run import TrackedRun

WEIGHTS_TAG = "ftlab.weights_sha256"


# ------------------------------------------------------------------ identity
def run_name(cfg: DictConfig, optimizer_choice: str | None) -> str:
    """`<model>-<data>-<optimizer>-lr<lr>-<6 hex>`, unless `run_name` is set."""
    if cfg.get("run_name"):
        return str(cfg.run_name)
    optimizer = _optimizer_name(cfg, optimizer_choice)
    return f"{cfg.model.name}-{cfg.data.name}-{optimizer}-lr{cfg.optimizer.lr:g}-{uuid.uuid4().hex[:6]}"


def _optimizer_name(cfg: DictConfig, choice: str | None) -> str:
    """The optimizer option the user picked (adamw), else its class name in lower case."""
    return choice or str(cfg.optimizer._target_).rsplit(".", 1)[-1].lower()


def run_tags(cfg: DictConfig, choices: dict[str, str]) -> dict[str, str]:
    tags = {
        "ftlab.version": __version__,
        "ftlab.seed": str(cfg.seed),
        "ftlab.model": str(cfg.model.name),
        "ftlab.data": str(cfg.data.name),
        "ftlab.optimizer": _optimizer_name(cfg, choices.get("optimizer")),
        "ftlab.finetune": str(cfg.finetune.name),
        "ftlab.experiment": choices.get("experiment") or "",
        "ftlab.output_dir": str(cfg.paths.output_dir),
    }
    tags.update(git_state(cfg.paths.root_dir))
    tags.update(machine_tags(str(cfg.trainer.accelerator), cfg.trainer.devices))
    trial = cfg.get("optuna_trial")
    if trial:
        tags.update(
            {
                "mlflow.parentRunId": str(trial.get("parent_run_id") or ""),
                "ftlab.study": str(trial.study),
            }
        )
        tags.update({"ftlab.trial_number": str(trial.number), "ftlab.trial_state": "RUNNING"})
        if not trial.get("parent_run_id"):
            del tags["mlflow.parentRunId"]
    source = cfg.model.backbone.get("uri") or cfg.model.backbone.get("path")
    if source:
        tags["ftlab.backbone_source"] = str(source)  # lineage: the run this backbone came from
    return tags


def command_line() -> str:
    secrets = secret_values()
    return "ftlab train " + " ".join(
        shlex.quote(redact_override(arg, secrets)) for arg in sys.argv[1:]
    )


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay whole values."""
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): tree}


# ------------------------------------------------------------------ start
def record_start(run: TrackedRun, cfg: DictConfig, datamodule: Any) -> None:
    secrets = secret_values()
    resolved = redact_tree(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True), secrets)
    run.log_params(redact_params(flatten(resolved), secrets))
    sizes = {f"data.size.{split}": size for split, size in datamodule.split_sizes.items()}
    run.log_params({"data.fingerprint": datamodule.fingerprint, **sizes})
    run.log_text(yaml.safe_dump(resolved, sort_keys=False), "config.yaml")
    run.log_dict(
        {
            "fingerprint": datamodule.fingerprint,
            "splits": datamodule.split_sizes,
            "task": datamodule.task,
            "classes": datamodule.class_names,
        },
        "data/summary.json",
    )
    run.log_text(requirements_txt(), "environment/requirements.txt")
    diff = git_diff(cfg.paths.root_dir)
    if diff:
        run.log_text(diff, "environment/git_diff.patch")
    _log_hydra_files(run, Path(cfg.paths.output_dir) / ".hydra", secrets)


def _log_hydra_files(run: TrackedRun, hydra_dir: Path, secrets: set[str]) -> None:
    """Hydra's config.yaml / hydra.yaml / overrides.yaml, with secrets redacted."""
    if not hydra_dir.is_dir():
        return
    for path in sorted(hydra_dir.glob("*.yaml")):
        content = yaml.safe_load(path.read_text())
        if path.name == "overrides.yaml" and isinstance(content, list):
            content = [redact_override(str(o), secrets) for o in content]
        else:
            content = redact_tree(content, secrets)
        run.log_text(yaml.safe_dump(content, sort_keys=False), f".hydra/{path.name}")


# ------------------------------------------------------------------ end
def record_end(
    run: TrackedRun, cfg: DictConfig, model: Any, datamodule: Any, best_checkpoint: str | None
) -> dict[str, str]:
    """Log what the finished run produced; returns facts to print (model URI, version)."""
    import torch

    from ftlab.models.package import Predictor, save_model_dir
    from ftlab.models.weights import state_sha256
    from ftlab.tracking.model_export import log_pyfunc_model, register

    if best_checkpoint:
        run.log_artifact(best_checkpoint, "checkpoints")
        state = torch.load(best_checkpoint, map_location="cpu", weights_only=True)["state_dict"]
        model.load_state_dict(state)
    # Equal hashes, bitwise equal weights: what `ftlab reproduce --check` compares beside metrics.
    run.set_tags({WEIGHTS_TAG: state_sha256(model)})
    facts: dict[str, str] = {}
    run.set_tags({"ftlab.trainable_params": str(model.trained_parameter_count())})
    backbone, backbone_config = model.exported_backbone()  # LoRA: adapters merged
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = save_model_dir(
            backbone,
            model.head,
            backbone_config,
            model.head_config,
            datamodule.task,
            datamodule.class_names,
            Path(scratch) / "ftlab_model",
        )
        predictor = Predictor(model_dir)
        examples, targets = datamodule.model_inputs("test")
        inputs = _as_model_input(examples)
        report_dir = Path(scratch) / "report"
        report_dir.mkdir()
        for path in _test_report(
            predictor.predict(inputs), targets, examples, datamodule, report_dir
        ):
            run.log_artifact(path, "test_report")
        if cfg.logger.get("log_model", True):
            example = inputs[:3]
            info = log_pyfunc_model(run.run_id, run.tracking_uri, model_dir, example, predictor)
            facts["model_uri"] = info.model_uri
            run.set_tags({"ftlab.model_uri": info.model_uri})
            register_as = cfg.logger.get("register_as")
            if register_as:
                facts["registered"] = (
                    f"{register_as} version {register(info.model_uri, str(register_as), run.tracking_uri)}"
                )
    return facts


def _as_model_input(examples: list[Any]) -> Any:
    """Strings stay a list; image tensors become one float32 array (N, C, H, W)."""
    import numpy as np

    if examples and isinstance(examples[0], str):
        return list(examples)
    return np.stack([np.asarray(e, dtype=np.float32) for e in examples])


def _test_report(
    predictions: Any, targets: Any, examples: list[Any], datamodule: Any, directory: Path
) -> list[Path]:
    import numpy as np

    from ftlab.tracking.reports import classification_report, regression_report

    if datamodule.task == "regression":
        predicted = predictions["prediction"].to_numpy()
        return regression_report(
            np.asarray(targets, dtype=np.float32), predicted, examples, directory
        )
    index = {name: i for i, name in enumerate(datamodule.class_names)}
    predicted = np.asarray([index[label] for label in predictions["label"]])
    return classification_report(np.asarray(targets), predicted, datamodule.class_names, directory)
