"""The search space, written in Hydra's override grammar, turned into Optuna suggestions.

    optimizer: choice(adamw, adam, sgd)            -> categorical
    optimizer.lr: tag(log, interval(1e-5, 1e-1))   -> float, log scale
    data.batch_size: range(16, 129, 16)            -> int with step
    model.head.dropout: interval(0.0, 0.5)         -> float
    trainer.max_epochs: tag(int, interval(2, 8))   -> int
Conditional params are sampled only when another param took a given value:
    conditional_params: {"optimizer=sgd": {optimizer.momentum: interval(0.0, 0.99)}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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

    def sample(self, trial: Any) -> dict[str, Any]:
        """Suggest every param whose condition holds; fixed values pass through."""
        sampled: dict[str, Any] = {}
        for key, distribution, condition in self.params:
            if condition is not None and not condition.holds(sampled):
                continue
            sampled[key] = suggest(trial, key, distribution)
        return sampled

    def grid(self) -> dict[str, list[Any]] | None:
        """The grid of an all-choice space (for the grid sampler); None otherwise."""
        if not all(isinstance(d, CategoricalDistribution) and c is None for _, d, c in self.params):
            return None
        return {key: list(d.choices) for key, d, _ in self.params}

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


def parse_space(
    params: Mapping[str, str] | None, conditional: Mapping[str, Mapping[str, str]] | None
) -> SearchSpace:
    entries = [(key, _distribution(key, value), None) for key, value in (params or {}).items()]
    known = {key for key, _, _ in entries}
    for condition_text, group in (conditional or {}).items():
        key, sep, value = str(condition_text).partition("=")
        if not sep or key not in known:
            raise FtlabError(
                f"hydra.sweeper.conditional_params: '{condition_text}' must be KEY=VALUE with KEY a swept param"
            )
        condition = Condition(key.strip(), value.strip())
        entries += [(k, _distribution(k, v), condition) for k, v in group.items()]
    return SearchSpace(entries)


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
    tags = getattr(value, "tags", set())
    if isinstance(value, ChoiceSweep):
        return CategoricalDistribution([_plain(v) for v in value.list])
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if all(isinstance(x, int) for x in (start, stop, step)):
            return IntDistribution(int(start), int(stop) - 1, step=int(step))
        return FloatDistribution(float(start), float(stop), step=float(step))
    if isinstance(value, IntervalSweep):
        log = "log" in tags
        if "int" in tags:
            return IntDistribution(int(value.start), int(value.end), log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise FtlabError(f"hydra.sweeper.params.{key}: '{text}' is not choice(), range() or interval()")


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
