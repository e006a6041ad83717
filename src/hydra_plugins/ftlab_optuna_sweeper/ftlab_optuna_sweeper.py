"""Registers ftlab's Optuna sweeper with Hydra as `hydra/sweeper=ftlab_optuna`.

Hydra imports every module under the `hydra_plugins` namespace package at start-up, single runs
included; so this module stays light and the sweeper itself (`ftlab.sweep.sweeper`, with Optuna)
is imported only when Hydra builds a sweeper."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper


class FtlabOptunaSweeper(Sweeper):
    """Hydra accepts plugin classes from the hydra_plugins package only: this is ftlab's sweeper,
    handing every call to `ftlab.sweep.sweeper.OptunaSweeper`."""

    def __init__(self, **settings: Any) -> None:
        super().__init__()
        from ftlab.sweep.sweeper import OptunaSweeper

        self.sweeper = OptunaSweeper(**settings)

    def __getattr__(self, name: str) -> Any:
        """Settings and state read off the sweeper (`params`, `n_trials`, ...) are the real one's."""
        if name == "sweeper":  # not built yet
            raise AttributeError(name)
        return getattr(self.sweeper, name)

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.sweeper.sweep(arguments)


@dataclass
class FtlabOptunaSweeperConf:
    """`hydra/sweeper=ftlab_optuna`; each key is documented in the README's sweep section, with
    its hydra-optuna-sweeper counterpart."""

    _target_: str = "hydra_plugins.ftlab_optuna_sweeper.ftlab_optuna_sweeper.FtlabOptunaSweeper"
    # `hydra/sweeper/sampler=random` picks a sampler as in hydra-optuna-sweeper.
    defaults: list[Any] = field(default_factory=lambda: ["_self_", {"sampler": "tpe"}])
    n_trials: int = 20  # the study's total, across resumes and parallel workers
    direction: Any = None  # minimize | maximize | a list of them; null: from monitor.mode
    study_name: Any = None  # null: <hparams_search preset>-<experiment_name>
    storage: Any = None  # any Optuna storage URL; null: sqlite:///<cwd>/mlruns/optuna.db
    n_jobs: int = 1  # batch mode: trials per launch of Hydra's launcher (joblib runs them at once)
    workers: int = 0  # asynchronous mode: N worker processes, each takes the next trial at once
    devices: Any = None  # workers' GPUs, e.g. [0, 1]; null: all visible (on CPU: cores shared)
    heartbeat_s: float = 30  # a running trial's heartbeat; RDB storages only
    grace_s: float = 90  # a trial without heartbeat this long is failed and retried
    max_failure_rate: float = 0.5  # stop the sweep when more trials than this share failed
    sampler: dict[str, Any] = field(default_factory=dict)  # name, seed and the sampler's options
    pruner: dict[str, Any] = field(
        default_factory=lambda: {"name": "median", "n_startup_trials": 3, "n_warmup_steps": 1}
    )
    params: dict[str, Any] = field(default_factory=dict)
    conditional_params: dict[str, Any] = field(default_factory=dict)
    custom_search_space: Any = None  # module.function(cfg, trial) suggesting more params
    continue_changed: bool = False  # go on with a study whose space or fixed values differ


_store = ConfigStore.instance()
_store.store(
    group="hydra/sweeper", name="ftlab_optuna", node=FtlabOptunaSweeperConf, provider="ftlab"
)
for _name in ("tpe", "random", "grid", "qmc", "cmaes", "nsgaii"):
    _store.store(
        group="hydra/sweeper/sampler",
        name=_name,
        node={"name": _name, "seed": 42 if _name != "grid" else None},
        provider="ftlab",
    )
