"""The search space, written in Hydra's override grammar, turned into Optuna distributions.

Each function means what it means in Hydra (and in hydra-optuna-sweeper where Hydra is silent):

    optimizer: choice(adamw, adam, sgd)              -> categorical (shuffle(...) too)
    optimizer.lr: tag(log, interval(1e-5, 1e-1))     -> float, log scale
    model.head.dropout: interval(0.0, 0.5)           -> float (interval() gives floats)
    trainer.max_epochs: int(interval(2, 8))          -> int, 2..8 (both ends, as Optuna's high)
    data.batch_size: range(16, 129, 16)              -> int 16, 32, ..., 128 with step 16
    model.head.dropout: range(0.0, 0.5, 0.1)         -> float 0.0, 0.1, ..., 0.4 with step 0.1

`range(start, stop, step)` is Hydra's (and Python's) range for ints and floats alike: start,
start+step, ... while below `stop`, so `stop` itself is never sampled. (hydra-optuna-sweeper's
samplers include `stop` for ints while its grid excludes it; ftlab keeps Hydra's one rule.)
`tag(int, interval(...))` is kept as ftlab's older spelling of `int(interval(...))`.

Conditional params are sampled only when another param took a given value:
    conditional_params: {"optimizer=sgd": {optimizer.momentum: interval(0.0, 0.99)}}
A key fixed on the command line (`optimizer=sgd`) leaves the space; conditions on it are decided
at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from ftlab.errors import FtlabError


@dataclass(frozen=True)
class Condition:
    key: str
    value: str

    def holds(self, sampled: Mapping[str, Any]) -> bool:
        return str(sampled.get(self.key)) == self.value


@dataclass
class SearchSpace:
    """Params in the order they are sampled, each with the condition (if any) it depends on."""

    params: list[tuple[str, BaseDistribution | Any, Condition | None]]
    fixed: dict[str, str] = field(default_factory=dict)  # keys fixed on the command line

    def sample(self, trial: Any) -> dict[str, Any]:
        """Suggest every param whose condition holds; fixed values pass through."""
        sampled: dict[str, Any] = {}
        for key, distribution, condition in self.params:
            if condition is not None and not condition.holds(sampled):
                continue
            sampled[key] = suggest(trial, key, distribution)
        return sampled

    def grid(self) -> dict[str, list[Any]]:
        """Every point of a discrete space (for the grid sampler): choices, and ranges
        discretized by their step; a continuous or conditional param is named in an error."""
        grid = {}
        for key, distribution, condition in self.params:
            if condition is not None:
                raise FtlabError(
                    f"hydra.sweeper.sampler: the grid sampler cannot sample {key}, which depends "
                    f"on {condition.key}; sweep it with tpe or random"
                )
            grid[key] = grid_values(key, distribution)
        return grid

    def describe(self) -> dict[str, str]:
        """Param -> its distribution, with the condition when there is one."""
        return {key: repr(d) + (f" if {c.key}={c.value}" if c else "") for key, d, c in self.params}


def suggest(trial: Any, key: str, distribution: BaseDistribution | Any) -> Any:
    """One value through Optuna's public suggest API; fixed values pass through."""
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(key, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            key, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(
            key, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    return distribution


def grid_values(key: str, distribution: BaseDistribution | Any) -> list[Any]:
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    if isinstance(distribution, IntDistribution) and not distribution.log:
        return list(range(distribution.low, distribution.high + 1, distribution.step))
    if isinstance(distribution, FloatDistribution) and distribution.step is not None:
        count = round((distribution.high - distribution.low) / distribution.step) + 1
        return [distribution.low + i * distribution.step for i in range(count)]
    if not isinstance(distribution, BaseDistribution):
        return [distribution]
    raise FtlabError(
        f"hydra.sweeper.sampler: the grid sampler needs discrete params, but {key} is "
        f"{repr(distribution)}; use choice() or range() for it, or another sampler"
    )


def parse_space(
    params: Mapping[str, Any] | None,
    conditional: Mapping[str, Mapping[str, Any]] | None,
    fixed: Mapping[str, str] | None = None,
) -> SearchSpace:
    """The space from the sweeper's `params` and `conditional_params`, minus the keys `fixed`
    on the command line (a fixed value wins over a preset's range, as in Hydra)."""
    fixed = dict(fixed or {})
    entries = [
        (key, _distribution(key, value), None)
        for key, value in (params or {}).items()
        if key not in fixed
    ]
    known = {key for key, _, _ in entries}
    for condition_text, group in (conditional or {}).items():
        key, sep, value = (part.strip() for part in str(condition_text).partition("="))
        if not sep or (key not in known and key not in fixed):
            raise FtlabError(
                f"hydra.sweeper.conditional_params: '{condition_text}' must be KEY=VALUE with "
                "KEY a swept (or fixed) param"
            )
        if key in fixed:  # decided now: the group is in the space unconditionally, or not at all
            if _same_value(fixed[key], value):
                entries += [
                    (k, _distribution(k, v), None) for k, v in group.items() if k not in fixed
                ]
            continue
        condition = Condition(key, value)
        entries += [(k, _distribution(k, v), condition) for k, v in group.items() if k not in fixed]
    return SearchSpace(entries, fixed)


def _same_value(given: str, expected: str) -> bool:
    return given.strip("'\"") == expected.strip("'\"")


def _distribution(key: str, text: Any) -> BaseDistribution | Any:
    parser = OverridesParser.create()
    try:
        override = parser.parse_override(f"{key}={text}")
    except Exception as err:  # noqa: BLE001 - Hydra's grammar errors come in several types
        raise FtlabError(
            f"hydra.sweeper.params.{key}: cannot parse '{text}' ({str(err).splitlines()[0]})"
        ) from None
    value = override.value()
    if not override.is_sweep_override():
        return value
    if isinstance(value, ChoiceSweep):
        return CategoricalDistribution([_plain(v) for v in value.list])
    if isinstance(value, RangeSweep):
        return _range_distribution(key, text, value)
    if isinstance(value, IntervalSweep):
        return _interval_distribution(key, text, value)
    raise FtlabError(f"hydra.sweeper.params.{key}: '{text}' is not choice(), range() or interval()")


def _range_distribution(key: str, text: Any, value: RangeSweep) -> BaseDistribution:
    start, stop, step = value.start, value.stop, value.step
    if not step:
        raise FtlabError(f"hydra.sweeper.params.{key}: '{text}' has a step of 0")
    count = max(0, math.ceil((stop - start) / step))
    points = [start + i * step for i in range(count)]
    if not points:
        raise FtlabError(f"hydra.sweeper.params.{key}: '{text}' holds no value")
    if value.shuffle or step < 0 or len(points) == 1:
        return CategoricalDistribution(points)
    if all(isinstance(x, int) for x in (start, stop, step)):
        return IntDistribution(int(start), int(points[-1]), step=int(step))
    return FloatDistribution(float(start), float(points[-1]), step=float(step))


def _interval_distribution(key: str, text: Any, value: IntervalSweep) -> BaseDistribution:
    if value.start > value.end:
        raise FtlabError(f"hydra.sweeper.params.{key}: '{text}' has its low end above its high end")
    tags = value.tags or set()
    log = "log" in tags
    if log and value.start <= 0:
        raise FtlabError(f"hydra.sweeper.params.{key}: '{text}' is log-scaled, so it must be > 0")
    integer = "int" in tags or (isinstance(value.start, int) and isinstance(value.end, int))
    if integer:
        return IntDistribution(int(value.start), int(value.end), log=log)
    return FloatDistribution(float(value.start), float(value.end), log=log)


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def as_override(key: str, value: Any) -> str:
    """`key=value` in Hydra's grammar (strings quoted when they need it)."""
    if isinstance(value, float):
        return f"{key}={value!r}"
    if (
        isinstance(value, str)
        and not value.replace("_", "").replace("-", "").replace(".", "").isalnum()
    ):
        return f"{key}='{value}'"
    return f"{key}={value}"
