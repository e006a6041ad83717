"""Samplers and pruners by name, as the sweep config and the jobs build them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import optuna

from ftlab.errors import FtlabError

if TYPE_CHECKING:
    from ftlab.sweep.space import SearchSpace

PRUNER_ATTR = "ftlab.pruner"  # study user attr: the pruner settings every job must use


def build_sampler(
    settings: dict[str, Any], seed_offset: int, space: SearchSpace | None = None
) -> optuna.samplers.BaseSampler:
    """TPE (default), random, grid or QMC. The seed moves on with the study's size, so a resumed
    sweep proposes new points instead of replaying the first ones."""
    name = settings.get("name", "tpe")
    seed = settings.get("seed")
    seed = None if seed is None else int(seed) + seed_offset
    if name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=int(settings.get("n_startup_trials", 5))
        )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed)
    if name == "grid":
        grid = settings.get("search_space") or (space.grid() if space is not None else None)
        if not grid:
            raise FtlabError(
                "hydra.sweeper.sampler: grid needs choice() params or sampler.search_space"
            )
        return optuna.samplers.GridSampler(dict(grid), seed=seed)
    raise FtlabError(
        f"hydra.sweeper.sampler.name: unknown sampler '{name}' (tpe, random, grid, qmc)"
    )


def build_pruner(settings: dict[str, Any]) -> optuna.pruners.BasePruner:
    name = settings.get("name", "median")
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=int(settings.get("n_startup_trials", 3)),
            n_warmup_steps=int(settings.get("n_warmup_steps", 1)),
        )
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=int(settings.get("min_resource", 1))
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=int(settings.get("min_resource", 1)))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise FtlabError(
        f"hydra.sweeper.pruner.name: unknown pruner '{name}' (median, successive_halving, hyperband, none)"
    )
