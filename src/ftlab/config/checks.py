"""Checks a composed config before anything is built, so bad input fails within seconds, with one
line naming the key, and leaves no run behind.

Only what the config alone can tell is checked here (types, values, unknown keys, files that must
exist, a loss that does not fit the data's task, a GPU that is not there); what needs the data or
the model (a weights file that does not fit) is checked by the builders, still before a run exists.
"""

from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from ftlab.config.schemas import SCHEMAS
from ftlab.errors import FtlabError
from ftlab.names import CLASSIFICATION, REGRESSION, TASK_METRICS

_SCHEMA_TYPES = {schema for group in SCHEMAS.values() for schema in group.values()}
_GPU_ACCELERATORS = ("gpu", "cuda")

# Config keys that name a path, what must be there, and the word the error uses for it.
PATH_KEYS = {
    "data.path": ("file", "file"),
    "data.root": ("dir", "directory"),
    "model.backbone.path": ("file", "checkpoint"),
    "model.backbone.weights_file": ("file", "file"),
}


def check_config(cfg: DictConfig) -> None:
    """Raise FtlabError naming the first missing, invalid or unknown key. `loss=auto` is first
    replaced by the loss it stands for, so the checks (and the run) see a real one."""
    _check_seed(cfg)  # before anything reads it: data.shuffle_seed interpolates it as an int
    try:
        missing = sorted(OmegaConf.missing_keys(cfg))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "config"
        raise FtlabError(f"{key}: {_first_line(err)}") from None
    if missing:
        raise FtlabError(
            f"{missing[0]} is required: set it on the command line, e.g. {missing[0]}=VALUE"
        )
    choose_auto_loss(cfg)
    nodes = _built_nodes(cfg)
    # Cheapest first: a typo in a value fails before torch or Lightning is even imported.
    for key, node in nodes:
        _check_values(key, node)
    _check_paths(cfg)
    _check_loss_fits_data(cfg)
    _check_monitor(cfg)
    _check_device(cfg)
    for key, node in nodes:  # may import the targets, to read their signatures
        _check_known_keys(key, node)


def _check_seed(cfg: DictConfig) -> None:
    seed = cfg.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise FtlabError(f"seed must be a whole number (got {seed!r})")


def _built_nodes(cfg: DictConfig) -> list[tuple[str, DictConfig]]:
    """Every config node that is instantiated: (its key, the node)."""
    nodes = [(group, cfg.get(group)) for group in ("data", "optimizer", "scheduler", "trainer")]
    nodes += [("finetune", cfg.get("finetune")), ("loss", cfg.get("loss"))]
    model = cfg.get("model") or {}
    nodes += [("model.backbone", model.get("backbone")), ("model.head", model.get("head"))]
    callbacks = cfg.get("callbacks") or {}
    nodes += [(f"callbacks.{name}", node) for name, node in callbacks.items()]
    strategy = (cfg.get("trainer") or {}).get("strategy")
    nodes.append(("trainer.strategy", strategy))
    return [
        (key, node) for key, node in nodes if isinstance(node, DictConfig) and "_target_" in node
    ]


def _check_values(key: str, node: DictConfig) -> None:
    """A typed group is converted to its dataclass, whose `__post_init__` checks the values
    (lr > 0, batch_size > 0, ...); the message is prefixed with the key. A config read back from a
    store has no schema attached: its values go through the group's schema that builds the same
    target and has all its keys."""
    try:
        if OmegaConf.get_type(node) in _SCHEMA_TYPES:
            OmegaConf.to_object(node)
            return
        schemas = _schemas_of(key, node)
        if not schemas:
            return
        values = OmegaConf.to_container(node, resolve=True)  # interpolations need the root
        for schema in schemas:
            try:
                typed = OmegaConf.merge(OmegaConf.structured(schema), values)
            except ConfigKeyError:
                continue  # a key this schema lacks: it does not describe the node
            OmegaConf.to_object(typed)
            return
    except (ValueError, TypeError, OmegaConfBaseException) as err:
        raise FtlabError(f"{key}.{_first_line(err)}") from None


def _check_known_keys(key: str, node: DictConfig) -> None:
    """`+data.extra_option=1` would reach the constructor as a TypeError deep in the build; name
    the key and the ones this object takes instead."""
    keys = [k for k in node if not str(k).startswith("_")]
    fields_known = {f.name for schema in _schemas_of(key, node) for f in fields(schema)}
    if fields_known and all(k in fields_known for k in keys):
        return  # the schema knows them all: no need to import the target
    known = _known_arguments(node, fields_known)
    if known is None:
        return
    unknown = sorted(k for k in keys if k not in known)
    if unknown:
        what = str(node._target_).rsplit(".", 1)[-1]
        raise FtlabError(
            f"{key}.{unknown[0]} is not a setting of {key} ({what}); known: "
            f"{', '.join(sorted(k for k in known if not k.startswith('_')))}"
        )


def _schemas_of(key: str, node: DictConfig) -> list[type]:
    """The schema a composed node carries, or, for a config read back from a store (plain YAML,
    no schema attached), the schemas of its group that build the same target: ftlab's own keys
    such as `trainer.compile` are known either way."""
    attached = OmegaConf.get_type(node)
    if attached in _SCHEMA_TYPES:
        return [attached]
    target = str(node.get("_target_"))
    return [
        schema
        for schema in SCHEMAS.get(key, {}).values()
        if getattr(schema, "_target_", None) == target
    ]


def _known_arguments(node: DictConfig, known: set[str]) -> set[str] | None:
    """The keys a node may hold: its schema's fields and its target's named parameters (None when
    neither says: a target taking **kwargs without a schema)."""
    known = set(known)
    target = _locate(str(node._target_))
    try:
        parameters = inspect.signature(target).parameters.values() if target else []
    except (TypeError, ValueError):  # builtins without a signature
        return known or None
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    if open_ended and not known:
        return None
    if not open_ended:
        known |= {p.name for p in parameters}
    return known


def _locate(target: str) -> Any:
    from hydra.utils import get_object

    try:
        return get_object(target)
    except Exception:  # noqa: BLE001 - a wrong target is reported by Hydra when it is built
        return None


def _check_paths(cfg: DictConfig) -> None:
    for key, (kind, word) in PATH_KEYS.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is None or not isinstance(value, str):
            continue
        path = Path(value).expanduser()
        exists = path.is_dir() if kind == "dir" else path.is_file()
        if not exists:
            raise FtlabError(f"{key}: no such {word} {path}")


def data_task(cfg: DictConfig) -> str | None:
    """The task the data declares in its config (regression or classification), without loading
    it, from its schema; None when only the data itself can tell."""
    schema = OmegaConf.get_type(cfg.data)
    declared = getattr(schema, "declared_task", None) if schema in _SCHEMA_TYPES else None
    if declared is None:
        return None
    return declared(OmegaConf.to_container(cfg.data, resolve=True, enum_to_str=True))


AUTO_LOSSES = {REGRESSION: "mse", CLASSIFICATION: "cross_entropy"}


def choose_auto_loss(cfg: DictConfig) -> None:
    """`loss=auto` (the default) becomes the loss that fits the data's task, so the run, its
    logged config and its reproduction all name the loss that was used."""
    if cfg.loss.get("name") != "auto" or "_target_" in cfg.loss:
        return
    from ftlab.config.locate import config_dir

    task = data_task(cfg)
    if task not in AUTO_LOSSES:
        raise FtlabError(
            f"loss=auto cannot tell the task of data={cfg.data.get('name')} before loading it: "
            "choose a loss (loss=mse, loss=cross_entropy, ...)"
        )
    chosen = OmegaConf.load(config_dir() / "loss" / f"{AUTO_LOSSES[task]}.yaml")
    given = {k: v for k, v in cfg.loss.items() if k != "name"}  # e.g. loss.label_smoothing=0.1
    with open_dict(cfg):
        cfg.loss = OmegaConf.merge(chosen, given)


def _check_loss_fits_data(cfg: DictConfig) -> None:
    task = data_task(cfg)
    loss = _locate(str(cfg.loss.get("_target_", "")))
    loss_task = getattr(loss, "task", None)
    if task is None or loss_task is None or task == loss_task:
        return
    name = getattr(loss, "name", "?")
    fitting = AUTO_LOSSES.get(task, "mse")
    raise FtlabError(
        f"loss={name} is for {loss_task} but data={cfg.data.get('name')} is {task}: "
        f"use loss={fitting} (or loss=auto, which picks it from the data)"
    )


def _check_monitor(cfg: DictConfig) -> None:
    """The monitored metric is one the run logs: a typo (val/accuracy) would otherwise fail at
    the end of the first epoch, in EarlyStopping's traceback, after a run was created."""
    monitor = cfg.get("monitor") or {}
    mode = monitor.get("mode")
    if mode not in ("min", "max"):
        raise FtlabError(f"monitor.mode must be min or max (got {mode!r})")
    metric, task = str(monitor.get("metric")), data_task(cfg)
    # Checkpoints and early stopping judge after validation, where only val/* metrics exist.
    if task not in TASK_METRICS:  # known only once the data loads
        if not metric.startswith("val/"):
            raise FtlabError(f"monitor.metric={metric}: monitor a validation metric (val/...)")
        return
    logged = ["val/loss", *(f"val/{name}" for name in TASK_METRICS[task])]
    if metric not in logged:
        raise FtlabError(
            f"monitor.metric={metric} is not logged for {task} data: use one of {', '.join(logged)}"
        )


def _check_device(cfg: DictConfig) -> None:
    accelerator = str(cfg.trainer.get("accelerator", "cpu"))
    if accelerator not in _GPU_ACCELERATORS:
        return
    import torch

    if not torch.cuda.is_available():
        raise FtlabError(
            f"trainer.accelerator={accelerator} but no CUDA GPU is visible: use trainer=cpu"
        )


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0]


RELAUNCH_MESSAGE = (
    "trainer.strategy: 'ddp' relaunches the command line per rank, which under -m reruns the whole "
    "sweep with other hyperparameters on each rank; use trainer.strategy=ddp_spawn in sweeps"
)


def relaunches_script(strategy: Any) -> bool:
    """True for strategies whose extra ranks re-execute the command line (Lightning's `ddp`)."""
    if isinstance(strategy, str):
        return strategy.startswith("ddp") and "spawn" not in strategy and "fork" not in strategy
    if isinstance(strategy, DictConfig):
        return (
            str(strategy.get("_target_", "")).endswith("DDPStrategy")
            and strategy.get("start_method", "popen") == "popen"
        )
    return False
