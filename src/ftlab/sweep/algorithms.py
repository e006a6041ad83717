"""Samplers and pruners by name, as the sweep config and the jobs build them.

`hydra.sweeper.sampler` takes ftlab's spelling (`name: tpe`, `seed: 42`, ...) or
hydra-optuna-sweeper's (`_target_: optuna.samplers.TPESampler`, with the class's arguments).

Seeds: a seeded TPE or random sampler is re-seeded before every ask with `seed + trials in the
study`, counted under the study lock. One worker thus proposes the same points from the same seed
every time, a resumed sweep moves on instead of replaying its first points, and workers started
at the same instant never share a seed (two workers seeded alike propose the same points).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import optuna

from ftlab.errors import FtlabError

if TYPE_CHECKING:
    from ftlab.sweep.space import SearchSpace

PRUNER_ATTR = "ftlab.pruner"  # study user attr: the pruner settings every job must use
SAMPLERS = ("tpe", "random", "grid", "qmc", "cmaes", "nsgaii")
PRUNERS = ("median", "successive_halving", "hyperband", "none")
_CLASS_NAMES = {
    "TPESampler": "tpe",
    "RandomSampler": "random",
    "GridSampler": "grid",
    "QMCSampler": "qmc",
    "CmaEsSampler": "cmaes",
    "NSGAIISampler": "nsgaii",
    "MedianPruner": "median",
    "SuccessiveHalvingPruner": "successive_halving",
    "HyperbandPruner": "hyperband",
    "NopPruner": "none",
}
_RESEEDED = ("tpe", "random")  # QMC and grid keep one seed: their sequence is the point


def sampler_name(settings: dict[str, Any]) -> str:
    target = settings.get("_target_")
    if target:
        name = _CLASS_NAMES.get(str(target).rsplit(".", 1)[-1])
        if name is None or name not in SAMPLERS:
            raise FtlabError(
                f"hydra.sweeper.sampler._target_: unknown sampler '{target}' ({', '.join(SAMPLERS)})"
            )
        return name
    name = str(settings.get("name", "tpe"))
    if name not in SAMPLERS:
        raise FtlabError(
            f"hydra.sweeper.sampler.name: unknown sampler '{name}' ({', '.join(SAMPLERS)})"
        )
    return name


def build_sampler(
    settings: dict[str, Any], trials_so_far: int, space: SearchSpace | None = None
) -> optuna.samplers.BaseSampler:
    """The sampler for the next ask (see the module docstring for its seed)."""
    name = sampler_name(settings)
    options = {k: v for k, v in settings.items() if k not in ("name", "_target_", "seed")}
    seed = settings.get("seed")
    if seed is not None:
        seed = int(seed) + (trials_so_far if name in _RESEEDED else 0)
    if name == "tpe":
        options.setdefault("n_startup_trials", 5)
        return optuna.samplers.TPESampler(seed=seed, **options)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, **options)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, **options)
    if name == "nsgaii":
        return optuna.samplers.NSGAIISampler(seed=seed, **options)
    grid = options.pop("search_space", None) or (space.grid() if space is not None else None)
    if not grid:
        raise FtlabError("hydra.sweeper.sampler: grid needs discrete params or a search_space")
    return optuna.samplers.GridSampler(dict(grid), seed=seed)


def grid_size(settings: dict[str, Any], space: SearchSpace) -> int | None:
    """How many points the grid sampler has (None for other samplers)."""
    if sampler_name(settings) != "grid":
        return None
    grid = settings.get("search_space") or space.grid()
    size = 1
    for values in dict(grid).values():
        size *= len(values)
    return size


def build_pruner(settings: dict[str, Any]) -> optuna.pruners.BasePruner:
    target = settings.get("_target_")
    name = _CLASS_NAMES.get(str(target).rsplit(".", 1)[-1]) if target else settings.get("name")
    name = str(name or "median")
    options = {k: v for k, v in settings.items() if k not in ("name", "_target_")}
    if name == "median":
        options.setdefault("n_startup_trials", 3)
        options.setdefault("n_warmup_steps", 1)
        return optuna.pruners.MedianPruner(**_ints(options))
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(**_ints(options))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(**_ints(options))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise FtlabError(f"hydra.sweeper.pruner.name: unknown pruner '{name}' ({', '.join(PRUNERS)})")


def _ints(options: dict[str, Any]) -> dict[str, Any]:
    return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in options.items()}
