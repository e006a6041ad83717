"""Hydra's config loader for a sweep's jobs, composing each job shape once.

Hydra composes every job from scratch: it walks the defaults tree, loads and merges each config
file, then applies the overrides. For ftlab's configs that is about 0.3 s a trial, more than a
digits epoch. Jobs of one sweep differ mostly in numbers (`optimizer.lr=0.0012` against
`=0.031`, the trial's number), and numbers never change the defaults tree or which files merge.
So the first job of a shape is composed by Hydra and kept; a later job of the same shape is a copy
of it with its own numbers set where Hydra would have set them, and its own override lines in
`hydra.overrides.task` and `hydra.job.override_dirname`.

A job's shape is every override line as written, except that a number assigned to a dotted key
(`key=1e-3`, `+key=7`, `++key=7`) stands as its key, kind of assignment and type. Anything else (a
config group choice, a string, a list or dict, a deletion) is part of the shape itself, so it is
always composed by Hydra. A number Hydra refuses in a known shape (an int too large for a float
field) falls back to Hydra, which raises its own error.
"""

from __future__ import annotations

import copy
import os
from collections import OrderedDict
from typing import Any

from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, OmegaConf, open_dict

KEPT_SHAPES = 32  # a sweep has a few shapes (one per optimizer choice, say); this bounds odd ones


class JobConfigLoader(ConfigLoader):
    """Hydra's loader with `load_sweep_config` reusing the composition of a job's shape; every
    other call goes to the wrapped loader unchanged."""

    def __init__(self, loader: ConfigLoader) -> None:
        self.loader = loader
        self._composed: OrderedDict[tuple, DictConfig] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {"loader": self.loader}  # a launcher elsewhere builds its own compositions

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["loader"])

    def load_sweep_config(
        self, master_config: DictConfig, sweep_overrides: list[str]
    ) -> DictConfig:
        overrides = _parse(sweep_overrides)
        key = _shape_key(master_config, overrides)
        kept = self._composed.get(key)
        if kept is not None:
            try:
                return _with_numbers(copy.deepcopy(kept), overrides, master_config)
            except Exception:  # noqa: BLE001 - Hydra composes it and raises its own error
                pass
        config = self.loader.load_sweep_config(master_config, list(sweep_overrides))
        self._composed[key] = copy.deepcopy(config)
        while len(self._composed) > KEPT_SHAPES:
            self._composed.popitem(last=False)
        return config

    def has_composed(self, master_config: DictConfig, sweep_overrides: list[str]) -> bool:
        """Whether a job of this shape was composed (so its overrides are known to compose)."""
        return _shape_key(master_config, _parse(sweep_overrides)) in self._composed

    def load_configuration(self, *args: Any, **kwargs: Any) -> DictConfig:
        return self.loader.load_configuration(*args, **kwargs)

    def get_search_path(self) -> Any:
        return self.loader.get_search_path()

    def get_sources(self) -> Any:
        return self.loader.get_sources()

    def list_groups(self, parent_name: str) -> Any:
        return self.loader.list_groups(parent_name)

    def get_group_options(self, *args: Any, **kwargs: Any) -> Any:
        return self.loader.get_group_options(*args, **kwargs)

    def compute_defaults_list(self, *args: Any, **kwargs: Any) -> Any:
        return self.loader.compute_defaults_list(*args, **kwargs)


def _parse(sweep_overrides: list[str]) -> list[Override]:
    return OverridesParser.create().parse_overrides(list(sweep_overrides))


def _shape_key(master_config: DictConfig, overrides: list[Override]) -> tuple:
    """What decides how a job composes: the primary config, the sweep's own Hydra overrides, and
    each override line, with a number assigned to a dotted key standing as (key, kind of
    assignment, int or float)."""
    shape = tuple(
        (o.key_or_group, o.type, type(o.value()).__name__)
        if _is_number_setting(o)
        else o.input_line
        for o in overrides
    )
    hydra = master_config.hydra
    return (hydra.job.config_name, tuple(hydra.overrides.hydra), shape)


def _is_number_setting(override: Override) -> bool:
    """`a.b=3`, `+a.b=0.1`, `++a.b=1e-4`: one number put at a nested key. A top-level key may be a
    config group, whose choice changes the defaults tree."""
    if override.is_sweep_override() or "." not in override.key_or_group:
        return False
    if override.key_or_group.startswith("hydra.") or override.package is not None:
        return False
    kind = type(override.value())
    return override.type in (OverrideType.CHANGE, OverrideType.ADD, OverrideType.FORCE_ADD) and (
        kind is int or kind is float
    )


def _with_numbers(config: DictConfig, overrides: list[Override], master: DictConfig) -> DictConfig:
    """A copy of a composed job, given this job's numbers and override lines."""
    from hydra._internal.config_loader_impl import get_overrides_dirname

    for override in overrides:
        if _is_number_setting(override):
            OmegaConf.update(
                config, override.key_or_group, override.value(), merge=True,
                force_add=override.type != OverrideType.CHANGE,
            )  # fmt: skip
    task = [o for o in overrides if not o.is_hydra_override()]
    job, naming = config.hydra.job, config.hydra.job.config.override_dirname
    config.hydra.overrides.task = [o.input_line for o in task]
    job.override_dirname = get_overrides_dirname(
        overrides=task,
        kv_sep=naming.kv_sep,
        item_sep=naming.item_sep,
        exclude_keys=naming.exclude_keys,
    )
    with open_dict(job):
        for name in job.env_copy:
            job.env_set[name] = os.environ[name]
    config.hydra.runtime.cwd = os.getcwd()
    OmegaConf.copy_cache(from_config=master, to_config=config)
    return config
