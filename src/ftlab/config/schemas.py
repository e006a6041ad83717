"""Typed configs for the parts users type most.

Each dataclass is the schema of one config group option: the YAML under `conf/` names it in its
defaults list (`/schema/<group>/<name>@_here_`), so a wrong type fails when Hydra composes, and
`check_values` (below) runs each `__post_init__` so a wrong value fails before anything is built.
Field comments are the documentation of each key.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import II

from ftlab.names import CLASSIFICATION, REGRESSION


def _positive(name: str, value: float | int | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{name} must be > 0 (got {value})")


def _non_negative(name: str, value: float | int | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{name} must be >= 0 (got {value})")


def _fraction(name: str, value: float | None, *, allow_one: bool = False) -> None:
    upper_ok = value is None or (value <= 1 if allow_one else value < 1)
    if value is not None and not (value >= 0 and upper_ok):
        bound = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"{name} must lie in {bound} (got {value})")


# ---------------------------------------------------------------- optimizers
@dataclass
class _OptimizerConfig:
    _target_: str = "torch.optim.AdamW"
    _partial_: bool = True  # built later, over the trainable parameter groups only
    _convert_: str = "all"  # plain lists, never ListConfig, inside the optimizer state
    lr: float = 1e-3  # base learning rate (the head's, when a strategy scales groups)
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        _positive("lr", self.lr)
        _non_negative("weight_decay", self.weight_decay)


@dataclass
class AdamWConfig(_OptimizerConfig):
    _target_: str = "torch.optim.AdamW"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01
    fused: bool | None = (
        None  # one kernel over all params; None: torch's default (a slow loop on CPU)
    )


@dataclass
class AdamConfig(_OptimizerConfig):
    _target_: str = "torch.optim.Adam"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    fused: bool | None = (
        None  # one kernel over all params; None: torch's default (a slow loop on CPU)
    )


@dataclass
class SGDConfig(_OptimizerConfig):
    _target_: str = "torch.optim.SGD"
    momentum: float = 0.9
    nesterov: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_negative("momentum", self.momentum)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=true needs momentum > 0")


@dataclass
class RMSpropConfig(_OptimizerConfig):
    _target_: str = "torch.optim.RMSprop"
    alpha: float = 0.99
    momentum: float = 0.0
    eps: float = 1e-8


# ---------------------------------------------------------------- schedulers
class Interval(str, Enum):
    step = "step"
    epoch = "epoch"


@dataclass
class CosineWarmupConfig:
    _target_: str = "ftlab.models.schedules.CosineWithWarmup"
    warmup_fraction: float = 0.1  # share of all optimizer steps spent warming up linearly from 0
    min_lr_ratio: float = 0.0  # the cosine ends at lr * min_lr_ratio

    def __post_init__(self) -> None:
        _fraction("warmup_fraction", self.warmup_fraction)
        _fraction("min_lr_ratio", self.min_lr_ratio, allow_one=True)


@dataclass
class OneCycleConfig:
    _target_: str = "ftlab.models.schedules.OneCycle"
    pct_start: float = 0.3  # share of steps spent increasing the lr
    div_factor: float = 25.0  # initial lr = lr / div_factor
    final_div_factor: float = 1e4

    def __post_init__(self) -> None:
        _fraction("pct_start", self.pct_start)
        _positive("div_factor", self.div_factor)
        _positive("final_div_factor", self.final_div_factor)


@dataclass
class StepConfig:
    _target_: str = "ftlab.models.schedules.StepDecay"
    step_size: int = 1  # epochs between decays
    gamma: float = 0.5  # lr multiplier at each decay

    def __post_init__(self) -> None:
        _positive("step_size", self.step_size)
        _positive("gamma", self.gamma)


# ---------------------------------------------------------------- trainer
@dataclass
class TrainerConfig:
    _target_: str = "lightning.pytorch.Trainer"
    accelerator: str = "cpu"  # cpu | gpu | auto
    devices: Any = 1  # a count, a list of ids, or "auto"
    strategy: Any = "auto"  # auto | ddp | ddp_spawn | a strategy config with _target_
    num_nodes: int = 1
    precision: str = "32-true"  # 32-true | bf16-mixed | 16-mixed
    max_epochs: int = 3
    max_steps: int = -1  # -1: no step limit
    max_time: Any = None  # stop after this long, e.g. 00:02:00:00 (DD:HH:MM:SS); null: no limit
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    deterministic: Any = True  # true | false | "warn"
    log_every_n_steps: int = 10
    val_check_interval: Any = None
    check_val_every_n_epoch: int = 1
    limit_train_batches: Any = None  # a fraction or a batch count (quick runs)
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    num_sanity_val_steps: int = 0
    enable_progress_bar: bool = True
    enable_model_summary: bool = False
    benchmark: bool | None = None
    compile: bool = False  # torch.compile the model (ftlab's own key, not Lightning's)

    def __post_init__(self) -> None:
        if self.max_epochs == 0 or self.max_epochs < -1:
            raise ValueError(
                f"max_epochs must be >= 1, or -1 with max_steps (got {self.max_epochs}): "
                "a run that trains nothing would log an untrained model"
            )
        if self.max_epochs == -1 and self.max_steps == -1:
            raise ValueError("max_epochs=-1 (no epoch limit) needs max_steps > 0")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(
                f"max_steps must be >= 1, or -1 for no step limit (got {self.max_steps})"
            )
        if self.limit_train_batches in (0, 0.0):
            raise ValueError("limit_train_batches=0 trains nothing: give a fraction or a count > 0")
        _positive("accumulate_grad_batches", self.accumulate_grad_batches)
        _non_negative("gradient_clip_val", self.gradient_clip_val)
        _positive("log_every_n_steps", self.log_every_n_steps)
        _positive("check_val_every_n_epoch", self.check_val_every_n_epoch)
        _check_val_check_interval(self.val_check_interval)
        if str(self.precision) not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(sorted(PRECISIONS))} (got {self.precision!r})"
            )
        _check_max_time(self.max_time)


# What Lightning's Trainer accepts as `precision` (checked here, before Lightning is imported).
PRECISIONS = {
    "64-true", "32-true", "16-true", "bf16-true", "16-mixed", "bf16-mixed", "transformer-engine",
    "transformer-engine-float16", "64", "32", "16", "bf16",
}  # fmt: skip
_TIME_PARTS = {"weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds"}


def _check_val_check_interval(value: Any) -> None:
    """A fraction of the epoch in (0, 1], a number of batches >= 1, or a time (as max_time)."""
    if value is None:
        return
    if isinstance(value, str | dict):
        _check_max_time(value, "val_check_interval")
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"val_check_interval must be a number or a time (got {value!r})")
    if value <= 0 or (isinstance(value, float) and value > 1):
        raise ValueError(
            "val_check_interval must be a fraction of the epoch in (0, 1] or a batch count "
            f">= 1 (got {value})"
        )


def _check_max_time(value: Any, key: str = "max_time") -> None:
    """`DD:HH:MM:SS`, or a mapping of timedelta parts ({hours: 2})."""
    if value is None:
        return
    if isinstance(value, str):
        parts = value.split(":")
        valid = len(parts) == 4 and all(p.isdigit() for p in parts)
    else:
        valid = (
            isinstance(value, dict)
            and bool(value)
            and set(value) <= _TIME_PARTS
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value.values())
        )
    if not valid:
        raise ValueError(
            f"{key} must be DD:HH:MM:SS or a mapping such as {{hours: 2}} (got {value!r})"
        )


# ---------------------------------------------------------------- data
@dataclass
class _DataConfig:
    name: str = "data"
    batch_size: int = 32
    eval_batch_size: int | None = None  # defaults to batch_size
    num_workers: int = 0
    val_fraction: float = 0.1  # share of examples held out for validation
    test_fraction: float = 0.1  # share of examples held out for the final test
    split_seed: int = 0  # splits depend on this seed alone, so runs with other seeds compare fairly
    max_samples: int | None = None  # keep a random subset of this size (quick runs, tests)
    shuffle_seed: int = II("seed")  # each epoch's training order follows from it and the epoch
    # text: batches of similar length (less padding), still seeded; evaluation batches longest
    # first. On MiniLM/VADER it cuts the fit by about a fifth at equal val loss (README).
    group_by_length: bool = True

    @staticmethod
    def declared_task(options: dict[str, Any]) -> str | None:
        """The task (regression or classification) these options declare, known before the data
        loads, so a loss that does not fit fails at once; None when only the data can tell."""
        return None

    def __post_init__(self) -> None:
        _positive("batch_size", self.batch_size)
        _positive("eval_batch_size", self.eval_batch_size)
        _non_negative("num_workers", self.num_workers)
        _fraction("val_fraction", self.val_fraction)
        _fraction("test_fraction", self.test_fraction)
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be < 1")
        _positive("max_samples", self.max_samples)


class VaderTask(str, Enum):
    regression = "regression"
    polarity = "polarity"


@dataclass
class VaderDataConfig(_DataConfig):
    _target_: str = "ftlab.data.vader.VaderDataModule"
    name: str = "vader"
    task: VaderTask = VaderTask.regression  # regression: mean valence; polarity: negative/positive
    neutral_band: float = 0.5  # polarity drops words with |valence| <= neutral_band

    @staticmethod
    def declared_task(options: dict[str, Any]) -> str:
        return REGRESSION if options.get("task", REGRESSION) == REGRESSION else CLASSIFICATION

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_negative("neutral_band", self.neutral_band)


@dataclass
class DigitsDataConfig(_DataConfig):
    _target_: str = "ftlab.data.digits.DigitsDataModule"
    name: str = "digits"
    classes: list[int] | None = None  # keep only these digits (relabelled 0..k-1); null: all ten
    label_fraction: float = 1.0  # share of the training split that keeps its labels

    @staticmethod
    def declared_task(options: dict[str, Any]) -> str:
        return CLASSIFICATION

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.classes is not None:
            bad = [c for c in self.classes if not 0 <= c <= 9]
            if bad or len(set(self.classes)) < 2:
                raise ValueError(
                    f"classes must hold at least two distinct digits 0-9 (got {self.classes})"
                )
        if not 0 < self.label_fraction <= 1:
            raise ValueError(f"label_fraction must lie in (0, 1] (got {self.label_fraction})")


@dataclass
class ImageFolderDataConfig(_DataConfig):
    _target_: str = "ftlab.data.image_folder.ImageFolderDataModule"
    name: str = "image_folder"
    root: str = "???"  # train/ val/ test/ class folders, or class folders split by fractions
    image_size: int = 224
    resize_size: int | None = None  # resize before the center crop; defaults to image_size * 8/7
    hflip: bool = True  # random horizontal flips on the training split
    normalization: str = "backbone"  # backbone: the backbone's mean/std; none: raw [0, 1] pixels

    @staticmethod
    def declared_task(options: dict[str, Any]) -> str:
        return CLASSIFICATION

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("image_size", self.image_size)
        if self.normalization not in ("backbone", "none"):
            raise ValueError(f"normalization must be backbone or none (got {self.normalization})")


class LabelTask(str, Enum):
    classification = "classification"
    regression = "regression"


@dataclass
class CsvDataConfig(_DataConfig):
    _target_: str = "ftlab.data.csv.CsvDataModule"
    name: str = "csv"
    path: str = "???"  # a .csv or .tsv file with a header row
    text_column: str = "text"
    label_column: str = "label"
    task: LabelTask = LabelTask.classification
    delimiter: str | None = None  # null: tab for .tsv, comma otherwise

    @staticmethod
    def declared_task(options: dict[str, Any]) -> str:
        return str(options.get("task", CLASSIFICATION))


# ---------------------------------------------------------------- fine-tuning strategies
_UNFREEZE_MODES = ("all", "blocks")
_LORA_EXPORTS = ("merged", "adapters")


def _layer_decay(value: float) -> None:
    if not 0 < value <= 1:
        raise ValueError(f"layer_decay must lie in (0, 1] (got {value}); 1 turns it off")


@dataclass
class FullConfig:
    _target_: str = "ftlab.finetune.strategies.Full"
    name: str = "full"
    layer_decay: float = 1.0  # lr x this per depth below the head (0.75: top block 0.75, next 0.56)
    no_decay_bias_norm: bool = True  # no weight decay on biases and norm weights
    backbone_lr_ratio: float = 1.0  # the backbone's lr relative to the head's (optimizer.lr)

    def __post_init__(self) -> None:
        _layer_decay(self.layer_decay)
        _positive("backbone_lr_ratio", self.backbone_lr_ratio)


@dataclass
class LinearProbeConfig:
    _target_: str = "ftlab.finetune.strategies.LinearProbe"
    name: str = "linear_probe"
    layer_decay: float = 1.0  # no effect: the backbone never trains
    no_decay_bias_norm: bool = True

    def __post_init__(self) -> None:
        _layer_decay(self.layer_decay)


@dataclass
class GradualConfig(FullConfig):
    _target_: str = "ftlab.finetune.strategies.Gradual"
    name: str = "gradual"
    frozen_epochs: int = 1  # epochs with the whole backbone frozen (a linear probe)
    unfreeze: str = "blocks"  # all: whole backbone at once; blocks: one more depth, from the top
    every_epochs: int = 1  # blocks: epochs between two unfreezings
    backbone_lr_ratio: float = 0.1
    warmup_epochs: float = 0.5  # each unfrozen group's lr ramps from 0 over this many epochs

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_negative("frozen_epochs", self.frozen_epochs)
        _positive("every_epochs", self.every_epochs)
        _non_negative("warmup_epochs", self.warmup_epochs)
        if self.unfreeze not in _UNFREEZE_MODES:
            raise ValueError(f"unfreeze must be all or blocks (got {self.unfreeze})")


@dataclass
class LPFTConfig(FullConfig):
    _target_: str = "ftlab.finetune.strategies.LPFT"
    name: str = "lp_ft"
    probe_epochs: int = 1  # epochs of linear probing before everything fine-tunes
    warmup_epochs: float = 0.5  # the backbone's lr ramps from 0 over this many epochs

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_negative("probe_epochs", self.probe_epochs)
        _non_negative("warmup_epochs", self.warmup_epochs)


@dataclass
class LoraConfig:
    _target_: str = "ftlab.finetune.lora.Lora"
    name: str = "lora"
    rank: int = 8  # adapter rank r
    alpha: float = 16.0  # adapters scaled by alpha / rank
    dropout: float = 0.1  # dropout on the adapters' input
    target_modules: list[str] | None = None  # modules to adapt; null: peft's default per model
    export: str = "merged"  # the logged model: merged (plain weights) or adapters (base + adapters)
    layer_decay: float = 1.0
    no_decay_bias_norm: bool = True

    def __post_init__(self) -> None:
        _positive("rank", self.rank)
        _positive("alpha", self.alpha)
        _fraction("dropout", self.dropout)
        _layer_decay(self.layer_decay)
        if self.export not in _LORA_EXPORTS:
            raise ValueError(f"export must be merged or adapters (got {self.export})")


SCHEMAS: dict[str, dict[str, type]] = {
    "optimizer": {
        "adamw": AdamWConfig,
        "adam": AdamConfig,
        "sgd": SGDConfig,
        "rmsprop": RMSpropConfig,
    },
    "scheduler": {"cosine": CosineWarmupConfig, "onecycle": OneCycleConfig, "step": StepConfig},
    "trainer": {"default": TrainerConfig},
    "data": {
        "vader": VaderDataConfig,
        "digits": DigitsDataConfig,
        "image_folder": ImageFolderDataConfig,
        "csv": CsvDataConfig,
    },
    "finetune": {
        "full": FullConfig,
        "linear_probe": LinearProbeConfig,
        "gradual": GradualConfig,
        "lp_ft": LPFTConfig,
        "lora": LoraConfig,
    },
}


def register_schemas() -> None:
    """Put every schema into Hydra's ConfigStore as `schema/<group>/<name>`; idempotent."""
    store = ConfigStore.instance()
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=node)


__all__ = ["SCHEMAS", "register_schemas"]
