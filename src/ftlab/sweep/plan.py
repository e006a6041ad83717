"""What a sweep will do, worked out and checked before anything exists: the space, the values fixed
on the command line, the objectives and their directions, the study's name and storage.

Any Hydra app may be swept; ftlab's own apps (those with `trainer`, `monitor`, ...) are recognised
and get ftlab's defaults (direction from `monitor.mode`, the study named after the preset).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, ListConfig

from ftlab.errors import FtlabError
from ftlab.sweep.algorithms import build_pruner, build_sampler
from ftlab.sweep.space import SearchSpace, parse_space
from ftlab.sweep.storage import default_storage_url

# Fixed overrides that say how to sweep, not what the trials are: a study resumed with other
# values of these is the same study.
SWEEP_SETTINGS = ("hydra.", "hydra/", "hparams_search=")


@dataclass
class SweepPlan:
    fixed: list[str]  # overrides every trial gets as they are
    space: SearchSpace
    objectives: list[str]  # metric names (ftlab apps) or value_0, value_1, ... (other apps)
    directions: list[str]
    study_name: str
    storage_url: str
    is_ftlab_app: bool

    def study_settings(self) -> dict[str, Any]:
        """What the study remembers and a resumed sweep must agree with (the sampler and pruner
        may change between resumes: they decide how to search, not what)."""
        return {
            "space": self.space.describe(),
            "fixed": sorted(o for o in self.fixed if not o.startswith(SWEEP_SETTINGS)),
            "objectives": self.objectives,
        }


def is_ftlab_app(config: DictConfig) -> bool:
    return all(key in config for key in ("trainer", "monitor", "logger", "optimized_metric"))


def make_plan(sweeper: Any, config: DictConfig, arguments: list[str]) -> SweepPlan:
    """Raise FtlabError naming the setting at fault; create nothing."""
    if sweeper.n_trials < 1:
        raise FtlabError(f"hydra.sweeper.n_trials must be >= 1 (got {sweeper.n_trials})")
    if not 0 <= sweeper.max_failure_rate <= 1:
        raise FtlabError(
            f"hydra.sweeper.max_failure_rate must lie in [0, 1] (got {sweeper.max_failure_rate})"
        )
    ftlab_app = is_ftlab_app(config)
    fixed, swept, fixed_values = split_arguments(arguments)
    space = parse_space({**sweeper.params, **swept}, sweeper.conditional_params, fixed_values)
    if not space.params and not sweeper.custom_search_space:
        raise FtlabError(
            "hydra.sweeper.params is empty: give a search space (e.g. hparams_search=lr_optimizer)"
        )
    objectives = _objectives(config, ftlab_app, sweeper.direction)
    directions = _directions(config, ftlab_app, sweeper.direction, objectives)
    build_sampler(sweeper.sampler_settings, 0, space), build_pruner(sweeper.pruner_settings)
    if len(directions) > 1 and sweeper.pruner_settings.get("name", "median") != "none":
        sweeper.pruner_settings = {"name": "none"}  # Optuna prunes single objectives only
    name = sweeper.study_name or _default_study_name(config, ftlab_app)
    url = str(sweeper.storage_url or default_storage_url())
    return SweepPlan(fixed, space, objectives, directions, name, url, ftlab_app)


def split_arguments(arguments: list[str]) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """(fixed overrides, swept key -> its grammar, fixed key -> value). A sweep on the command
    line replaces the preset's range for its key; a plain value fixes the key (Hydra's rule)."""
    parser = OverridesParser.create()
    fixed, swept, values = [], {}, {}
    for argument, override in zip(arguments, parser.parse_overrides(arguments), strict=True):
        key = override.get_key_element().lstrip("+~")
        if override.is_sweep_override():
            swept[key] = argument.split("=", 1)[1]
        else:
            fixed.append(argument)
            if override.value() is not None and not override.is_delete():
                values[key] = override.get_value_element_as_str()
    return fixed, swept, values


def _objectives(config: DictConfig, ftlab_app: bool, direction: Any) -> list[str]:
    if ftlab_app:
        metric = config.optimized_metric
        return [str(m) for m in metric] if isinstance(metric, ListConfig | list) else [str(metric)]
    count = len(direction) if isinstance(direction, ListConfig | list) else 1
    return [f"value_{i}" for i in range(count)] if count > 1 else ["value"]


def _directions(
    config: DictConfig, ftlab_app: bool, direction: Any, objectives: list[str]
) -> list[str]:
    if direction is None:
        if len(objectives) > 1:
            raise FtlabError(
                f"hydra.sweeper.direction: give one direction per objective ({', '.join(objectives)}), "
                "e.g. hydra.sweeper.direction=[maximize,minimize]"
            )
        mode = str(config.monitor.mode) if ftlab_app else "min"
        return ["maximize" if mode == "max" else "minimize"]
    given = list(direction) if isinstance(direction, ListConfig | list) else [direction]
    directions = [str(getattr(d, "name", d)).lower() for d in given]
    bad = [d for d in directions if d not in ("minimize", "maximize")]
    if bad:
        raise FtlabError(f"hydra.sweeper.direction: '{bad[0]}' is not minimize or maximize")
    if len(directions) != len(objectives):
        raise FtlabError(
            f"hydra.sweeper.direction has {len(directions)} directions but optimized_metric names "
            f"{len(objectives)} objectives ({', '.join(objectives)})"
        )
    return directions


def _default_study_name(config: DictConfig, ftlab_app: bool) -> str:
    choices: Mapping[str, Any] = config.hydra.runtime.choices
    if ftlab_app:
        return f"{choices.get('hparams_search') or 'sweep'}-{config.experiment_name}"
    return f"sweep-{config.hydra.job.name}"
