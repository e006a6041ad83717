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
from ftlab.allocator import malloc_setting
from ftlab.names import (
    CHECKPOINTS_DIR,
    CONFIG_ARTIFACT,
    DATA_SUMMARY_ARTIFACT,
    GIT_DIFF_ARTIFACT,
    REGRESSION,
    REQUIREMENTS_ARTIFACT,
    TAG_BACKBONE_SOURCE,
    TAG_MALLOC,
    TAG_MODEL_URI,
    TAG_OUTPUT_DIR,
    TAG_SEED,
    TAG_STUDY,
    TAG_TRAINABLE,
    TAG_TRIAL_NUMBER,
    TAG_TRIAL_STATE,
    TAG_VERSION,
    TAG_WEIGHTS,
    TRIAL_KEY,
)
from ftlab.redact import redact_override, redact_params, redact_tree, secret_values
from ftlab.tracking.environment import requirements_txt
from ftlab.tracking.identity import git_diff, git_state, machine_tags
from ftlab.tracking.run import TrackedRun


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
        TAG_VERSION: __version__,
        TAG_SEED: str(cfg.seed),
        "ftlab.model": str(cfg.model.name),
        "ftlab.data": str(cfg.data.name),
        "ftlab.optimizer": _optimizer_name(cfg, choices.get("optimizer")),
        "ftlab.finetune": str(cfg.finetune.name),
        "ftlab.experiment": choices.get("experiment") or "",
        TAG_OUTPUT_DIR: str(cfg.paths.output_dir),
        TAG_MALLOC: malloc_setting(),
    }
    tags.update(git_state(cfg.paths.root_dir))
    tags.update(machine_tags(str(cfg.trainer.accelerator), cfg.trainer.devices))
    trial = cfg.get(TRIAL_KEY)
    if trial:
        tags.update(
            {
                "mlflow.parentRunId": str(trial.get("parent_run_id") or ""),
                TAG_STUDY: str(trial.study),
            }
        )
        tags.update({TAG_TRIAL_NUMBER: str(trial.number), TAG_TRIAL_STATE: "RUNNING"})
        if not trial.get("parent_run_id"):
            del tags["mlflow.parentRunId"]
    source = cfg.model.backbone.get("uri") or cfg.model.backbone.get("path")
    if source:
        tags[TAG_BACKBONE_SOURCE] = str(source)  # lineage: the run this backbone came from
    return tags


def command_line() -> str:
    secrets = secret_values()
    return "ftlab train " + " ".join(
        shlex.quote(redact_override(arg, secrets)) for arg in sys.argv[1:]
    )


def is_location(key: str) -> bool:
    """Keys that say where a run's files went on this machine (paths.output_dir, checkpoint
    dirpaths): they differ between any two runs and compare nothing, so they are not params
    (config.yaml has them)."""
    return key.startswith("paths.") or key.endswith((".dirpath", "output_dir", "root_dir"))


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
    params = {k: v for k, v in flatten(resolved).items() if not is_location(k)}
    run.log_params(redact_params(params, secrets))
    sizes = {f"data.size.{split}": size for split, size in datamodule.split_sizes.items()}
    run.log_params({"data.fingerprint": datamodule.fingerprint, **sizes})
    run.log_text(yaml.safe_dump(resolved, sort_keys=False), CONFIG_ARTIFACT)
    run.log_dict(
        {
            "fingerprint": datamodule.fingerprint,
            "splits": datamodule.split_sizes,
            "task": datamodule.task,
            "classes": datamodule.class_names,
        },
        DATA_SUMMARY_ARTIFACT,
    )
    run.log_text(requirements_txt(), REQUIREMENTS_ARTIFACT)
    diff = git_diff(cfg.paths.root_dir)
    if diff:
        run.log_text(diff, GIT_DIFF_ARTIFACT)
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
    """Log what the finished run produced (the model as it is: `train` leaves the best
    checkpoint's weights in it); returns facts to print (model URI, version)."""
    from ftlab.models.model_folder import Predictor, save_model_dir
    from ftlab.models.weights import state_sha256

    run.go_offline_if_away()  # a server that went away: what follows waits in the spool
    if best_checkpoint:
        run.log_artifact(best_checkpoint, CHECKPOINTS_DIR)
    # Equal hashes, bitwise equal weights: what `ftlab reproduce --check` compares beside metrics.
    run.set_tags({TAG_WEIGHTS: state_sha256(model)})
    facts: dict[str, str] = {}
    run.set_tags({TAG_TRAINABLE: str(model.trained_parameter_count())})
    tested, logs_model = bool(cfg.get("test", True)), _logs_model(cfg)
    if not (tested or logs_model):  # `test=false`: nothing is evaluated on the test split
        return facts
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
        if tested:  # the exported model on raw test inputs: what its users will get
            report_dir = Path(scratch) / "report"
            report_dir.mkdir()
            for path in _test_report(
                predictor.predict(inputs), targets, examples, datamodule, report_dir
            ):
                run.log_artifact(path, "test_report")
        if logs_model:
            facts.update(_log_model(run, cfg, model_dir, inputs[:3], predictor))
    return facts


def _log_model(
    run: TrackedRun, cfg: DictConfig, model_dir: Path, example: Any, predictor: Any
) -> dict[str, str]:
    """The pyfunc model, named after the run (or its registered name), with the final metrics
    linked; returns its URI and registration to print."""
    from ftlab.tracking.model_export import final_step, keep_model, log_pyfunc_model, register

    register_as = cfg.logger.get("register_as")
    name = str(register_as or run.run_name)
    if run.offline:  # `ftlab sync` logs it once the server is back
        keep_model(run.spool, model_dir, example, name, register_as)
        return {}
    run.wait_until_sent()  # the final metrics are linked to the model: they must be there
    info = log_pyfunc_model(run, name, model_dir, example, predictor, final_step(run))
    run.set_tags({TAG_MODEL_URI: info.model_uri})
    facts = {"model_uri": info.model_uri}
    if register_as:
        version = register(info.model_uri, str(register_as), run.tracking_uri)
        facts["registered"] = f"{register_as} version {version} (models:/{register_as}/{version})"
    return facts


def _logs_model(cfg: DictConfig) -> bool:
    """Single runs log their model; a sweep's trials only when asked (each would cost time and
    storage; the best one is retrained, or fine-tuned from its best checkpoint artifact)."""
    logger = cfg.logger
    if cfg.get(TRIAL_KEY):
        return bool(logger.get("log_model", True) and logger.get("sweep_log_model", False))
    return bool(logger.get("log_model", True))


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

    if datamodule.task == REGRESSION:
        predicted = predictions["prediction"].to_numpy()
        return regression_report(
            np.asarray(targets, dtype=np.float32), predicted, examples, directory
        )
    index = {name: i for i, name in enumerate(datamodule.class_names)}
    predicted = np.asarray([index[label] for label in predictions["label"]])
    return classification_report(np.asarray(targets), predicted, datamodule.class_names, directory)
