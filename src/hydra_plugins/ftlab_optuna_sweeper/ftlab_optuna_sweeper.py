"""Registers ftlab's Optuna sweeper with Hydra as `hydra/sweeper=ftlab_optuna`.

Hydra imports every module under the `hydra_plugins` namespace package at start-up; the sweeper
itself lives in `ftlab.sweep.sweeper`."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from ftlab.sweep import sweeper as _sweeper


class FtlabOptunaSweeper(_sweeper.OptunaSweeper):
    """Hydra accepts plugin classes from the hydra_plugins package only: this is ftlab's sweeper."""


@dataclass
class FtlabOptunaSweeperConf:
    _target_: str = "hydra_plugins.ftlab_optuna_sweeper.ftlab_optuna_sweeper.FtlabOptunaSweeper"
    n_trials: int = 20  # the study's total, across resumes and parallel workers
    direction: Any = None  # minimize | maximize; null: from monitor.mode
    study_name: Any = None  # null: <hparams_search preset>-<experiment_name>
    storage: Any = None  # any Optuna storage URL; null: sqlite:///<cwd>/mlruns/optuna.db
    n_jobs: int = 1  # trials per launch (parallel launchers run them at once)
    max_failure_rate: float = 0.5  # stop the sweep when more trials than this share failed
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "tpe", "seed": 42})
    pruner: dict[str, Any] = field(
        default_factory=lambda: {"name": "median", "n_startup_trials": 3, "n_warmup_steps": 1}
    )
    params: dict[str, Any] = field(default_factory=dict)
    conditional_params: dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(
    group="hydra/sweeper", name="ftlab_optuna", node=FtlabOptunaSweeperConf, provider="ftlab"
)
