"""Every YAML under conf/ is composed and instantiated: data module, model, optimizer (and the
part the file itself configures). A new config file without an entry here fails the test."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from conftest import CONF_DIR
from ftlab import builders
from ftlab.config.checks import check_config
from ftlab.config.setup import compose_train
from ftlab.errors import FtlabError

TEXT = ["model=tiny_bert", "data.max_samples=64"]
DIGITS = ["experiment=digits_scratch", "data.max_samples=120", "model.backbone.width=8"]
IMAGES = ["data=image_folder", "data.root={image_root}", "data.image_size=32", "loss=cross_entropy"]

# conf/ file -> overrides that compose it into a run that can be built on this machine.
COVERAGE: dict[str, list[str]] = {
    "train.yaml": TEXT,
    "hydra/default.yaml": TEXT,
    "paths/default.yaml": TEXT,
    "callbacks/default.yaml": TEXT,
    "logger/mlflow.yaml": TEXT,
    "logger/none.yaml": [*TEXT, "logger=none"],
    "data/vader.yaml": TEXT,
    "data/digits.yaml": DIGITS,
    "data/image_folder.yaml": [*IMAGES, "model=timm", "model.backbone.name=resnet10t"],
    "data/csv.yaml": [
        *TEXT,
        "data=csv",
        "data.path={csv_path}",
        "data.text_column=word",
        "loss=cross_entropy",
    ],
    "model/minilm.yaml": ["model=minilm", "data.max_samples=64"],
    "model/hf.yaml": ["model=hf", "model.backbone.name={minilm_dir}", "data.max_samples=64"],
    "model/tiny_bert.yaml": TEXT,
    "model/timm.yaml": [*IMAGES, "model=timm", "model.backbone.name=resnet10t"],
    "model/torchvision.yaml": [*IMAGES, "model=torchvision", "model.backbone.name=resnet18"],
    "model/digits_cnn.yaml": DIGITS,
    "model/from_checkpoint.yaml": [
        "experiment=digits_finetune",
        "model.backbone.path={checkpoint}",
        "data.max_samples=120",
    ],
    "model/from_mlflow.yaml": [
        "experiment=digits_scratch",
        "model=from_mlflow",
        "model.backbone.uri={model_uri}",
        "logger.tracking_uri={tracking_uri}",
        "data.max_samples=120",
    ],
    "model/head/linear.yaml": TEXT,
    "model/head/mlp.yaml": [*TEXT, "model/head=mlp"],
    "loss/auto.yaml": TEXT,
    "loss/mse.yaml": [*TEXT, "loss=mse"],
    "loss/huber.yaml": [*TEXT, "loss=huber"],
    "loss/cross_entropy.yaml": DIGITS,
    "loss/bce_with_logits.yaml": [*TEXT, "data.task=polarity", "loss=bce_with_logits"],
    "optimizer/adamw.yaml": TEXT,
    "optimizer/adam.yaml": [*TEXT, "optimizer=adam"],
    "optimizer/sgd.yaml": [*TEXT, "optimizer=sgd", "optimizer.nesterov=true"],
    "optimizer/rmsprop.yaml": [*TEXT, "optimizer=rmsprop"],
    "scheduler/cosine.yaml": TEXT,
    "scheduler/onecycle.yaml": [*TEXT, "scheduler=onecycle"],
    "scheduler/step.yaml": [*TEXT, "scheduler=step"],
    "scheduler/none.yaml": [*TEXT, "scheduler=none"],
    "trainer/default.yaml": [*TEXT, "trainer=default"],
    "trainer/cpu.yaml": TEXT,
    "trainer/gpu.yaml": [*TEXT, "trainer=gpu"],
    "trainer/ddp.yaml": [*TEXT, "trainer=ddp"],
    "trainer/ddp_cpu.yaml": [*TEXT, "trainer=ddp_cpu"],
    "finetune/full.yaml": TEXT,
    "finetune/linear_probe.yaml": [*TEXT, "finetune=linear_probe"],
    "finetune/gradual.yaml": [*DIGITS, "finetune=gradual"],
    "finetune/lp_ft.yaml": [*DIGITS, "finetune=lp_ft"],
    "finetune/layer_decay.yaml": [*TEXT, "finetune=layer_decay"],
    "finetune/lora.yaml": [*TEXT, "finetune=lora"],
    "hparams_search/lr_optimizer.yaml": [*TEXT, "hparams_search=lr_optimizer"],
    "hparams_search/lr_optimizer_batch_wd.yaml": [*TEXT, "hparams_search=lr_optimizer_batch_wd"],
    "experiment/vader_regression.yaml": [*TEXT, "experiment=vader_regression"],
    "experiment/vader_polarity.yaml": [*TEXT, "experiment=vader_polarity"],
    "experiment/digits_scratch.yaml": DIGITS,
    "experiment/digits_pretrain.yaml": ["experiment=digits_pretrain", "data.max_samples=120"],
    "experiment/digits_finetune.yaml": [
        "experiment=digits_finetune",
        "model.backbone.path={checkpoint}",
        "data.max_samples=120",
    ],
}


def shipped_configs() -> list[str]:
    return sorted(str(p.relative_to(CONF_DIR)) for p in CONF_DIR.rglob("*.yaml"))


def test_every_shipped_config_is_covered() -> None:
    assert shipped_configs() == sorted(COVERAGE), "add each new conf/ file to COVERAGE"


@pytest.fixture(scope="module")
def assets(
    digits_image_folder: Path,
    vader_csv: Path,
    digits_checkpoint: Path,
    logged_digits_model: tuple[str, str],
) -> dict[str, str]:
    from ftlab.models.backbones.hf import shipped_models

    return {
        "image_root": str(digits_image_folder),
        "csv_path": str(vader_csv),
        "checkpoint": str(digits_checkpoint),
        "model_uri": logged_digits_model[0],
        "tracking_uri": logged_digits_model[1],
        "minilm_dir": str(shipped_models()["sentence-transformers/all-MiniLM-L6-v2"]),
    }


@pytest.mark.parametrize("config_file", sorted(COVERAGE))
def test_config_composes_and_builds(
    config_file: str, assets: dict[str, str], tmp_path: Path
) -> None:
    overrides = [o.format(**assets) for o in COVERAGE[config_file]]
    cfg = compose_train(overrides, tmp_path)
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        with pytest.raises(FtlabError, match="trainer.accelerator=gpu but no CUDA GPU"):
            check_config(cfg)  # before anything is built
        return
    check_config(cfg)
    datamodule = builders.build_datamodule(cfg)
    model = builders.build_model(cfg, datamodule)
    optimizer = instantiate(cfg.optimizer)(model.strategy.param_groups(model, cfg.optimizer.lr))
    assert (
        isinstance(optimizer, torch.optim.Optimizer)
        and optimizer.param_groups[0]["lr"] == cfg.optimizer.lr
    )
    if cfg.get("scheduler"):
        schedule = instantiate(cfg.scheduler).build(optimizer, total_steps=20)
        assert schedule["interval"] in ("step", "epoch")

    inputs, targets = next(iter(datamodule.train_dataloader()))
    outputs = model(inputs)
    assert outputs.shape[0] == len(targets)
    assert torch.isfinite(model.loss(outputs, targets))

    trainer = builders.build_trainer(cfg, builders.build_callbacks(cfg, with_logger=True))
    assert trainer.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize("preset", ["lr_optimizer", "lr_optimizer_batch_wd"])
def test_sweep_presets_build_sweeper_and_search_space(preset: str) -> None:
    from ftlab.sweep.space import parse_space

    cfg = compose_train([*TEXT, f"hparams_search={preset}"], with_hydra=True)
    sweeper_cfg = cfg.hydra.sweeper
    assert sweeper_cfg._target_.endswith("FtlabOptunaSweeper")
    sweeper = instantiate(sweeper_cfg)
    space = parse_space(sweeper.params, sweeper.conditional_params)
    keys = [key for key, _, _ in space.params]
    assert {"optimizer", "optimizer.lr", "optimizer.momentum"} <= set(keys)
    if preset == "lr_optimizer_batch_wd":
        assert {"data.batch_size", "optimizer.weight_decay"} <= set(keys)


FAMILIES = {
    "hf": TEXT,
    "timm": [*IMAGES, "model=timm", "model.backbone.name=resnet10t"],
    "torchvision": [*IMAGES, "model=torchvision", "model.backbone.name=resnet18"],
    "digits_cnn": DIGITS,
}
PRESETS = ["full", "linear_probe", "gradual", "lp_ft", "layer_decay", "lora"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("preset", PRESETS)
def test_finetune_preset_builds_with_every_backbone_family(
    preset: str, family: str, digits_image_folder: Path, tmp_path: Path
) -> None:
    """Each preset gives every trainable parameter to exactly one param group, on every family;
    LoRA is for transformers only and says so in one line."""
    overrides = [o.format(image_root=digits_image_folder) for o in FAMILIES[family]]
    cfg = compose_train([*overrides, f"finetune={preset}"], tmp_path)
    check_config(cfg)
    datamodule = builders.build_datamodule(cfg)
    if preset == "lora" and family != "hf":
        with pytest.raises(FtlabError, match="finetune=lora needs a Hugging Face transformer"):
            builders.build_model(cfg, datamodule)
        return
    model = builders.build_model(cfg, datamodule)
    groups = model.strategy.param_groups(model, cfg.optimizer.lr)
    grouped = [id(p) for g in groups for p in g["params"]]
    assert len(grouped) == len(set(grouped))
    assert {id(p) for p in model.head.parameters()} <= set(grouped)
    backbone = {id(p) for p in model.backbone.parameters()}
    in_backbone = backbone & set(grouped)
    if preset == "linear_probe":
        assert not in_backbone
    elif preset == "lora":
        assert 0 < len(in_backbone) < len(backbone)
    else:
        assert in_backbone == backbone
    if preset == "layer_decay":
        lrs = [g["lr"] for g in groups if g["name"].startswith("backbone.")]
        assert min(lrs) < max(lrs) < cfg.optimizer.lr


def _constructor_defaults(target: str) -> dict[str, object]:
    """Named defaults of a target's constructor, its base classes' included (data modules pass
    **kwargs on to the shared base)."""
    import inspect

    from hydra.utils import get_object

    obj = get_object(target)
    defaults: dict[str, object] = {}
    for cls in reversed(getattr(obj, "__mro__", [obj])):
        init = cls.__init__ if isinstance(cls, type) else cls
        if init is object.__init__:
            continue
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        defaults.update({p.name: p.default for p in parameters if p.default is not p.empty})
    return defaults


def _plain(value: object) -> object:
    value = getattr(value, "value", value)  # enums
    return list(value) if isinstance(value, tuple | list) else value


def test_every_default_lives_in_one_place() -> None:
    """The schema dataclass owns each default: its target's constructor may repeat it (for use
    from Python) but never differ, and a YAML typed by the schema sets only what it changes."""
    import dataclasses

    import yaml

    from ftlab.config.schemas import SCHEMAS

    problems = []
    for options in SCHEMAS.values():
        for schema in options.values():
            fields = {f.name: f for f in dataclasses.fields(schema)}
            target = fields["_target_"].default
            # ftlab's own constructors; torch's and Lightning's defaults are theirs to keep.
            constructor = _constructor_defaults(target) if target.startswith("ftlab.") else {}
            for name, field in fields.items():
                default = field.default
                if (
                    name.startswith("_")
                    or default is dataclasses.MISSING
                    or str(default).startswith("${")
                ):
                    continue
                if name in constructor and _plain(constructor[name]) != _plain(field.default):
                    problems.append(
                        f"{schema.__name__}.{name}: schema {field.default!r}, constructor {constructor[name]!r}"
                    )
    for path in CONF_DIR.rglob("*.yaml"):
        content = yaml.safe_load(path.read_text()) or {}
        for entry in content.get("defaults", []):
            if not (isinstance(entry, str) and entry.startswith("/schema/")):
                continue
            group, option = entry.removeprefix("/schema/").split("@")[0].split("/")
            schema = {f.name: f for f in dataclasses.fields(SCHEMAS[group][option])}
            for key, value in content.items():
                field = schema.get(key)
                if (
                    field is not None
                    and field.default is not dataclasses.MISSING
                    and _plain(field.default) == _plain(value)
                ):
                    problems.append(
                        f"{path.relative_to(CONF_DIR)}: {key}: {value!r} restates the schema default"
                    )
    assert not problems, "\n".join(problems)
