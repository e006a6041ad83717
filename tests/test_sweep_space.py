"""The sweeper's pure parts, in-process: Hydra's grammar turned into Optuna distributions (as Hydra
and hydra-optuna-sweeper mean it), fixed values leaving the space, and what a job's result means
for its trial."""

from __future__ import annotations

import math

import pytest
from hydra.core.utils import JobReturn, JobStatus
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from ftlab.errors import FtlabError
from ftlab.sweep.algorithms import build_pruner, build_sampler, sampler_name
from ftlab.sweep.outcome import judge
from ftlab.sweep.plan import split_arguments
from ftlab.sweep.space import parse_space


def dist(text: str):
    (entry,) = parse_space({"k": text}, None).params
    return entry[1]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("choice(1, 2, 4)", CategoricalDistribution([1, 2, 4])),
        ("choice(adam, sgd)", CategoricalDistribution(["adam", "sgd"])),
        ("shuffle(choice(a, b))", CategoricalDistribution(["a", "b"])),
        ("interval(1, 5)", FloatDistribution(1.0, 5.0)),  # interval() gives floats in Hydra
        ("int(interval(1, 5))", IntDistribution(1, 5)),
        ("tag(log, int(interval(1, 64)))", IntDistribution(1, 64, log=True)),
        ("tag(log, interval(1e-5, 1e-1))", FloatDistribution(1e-5, 1e-1, log=True)),
        ("tag(int, interval(2, 8))", IntDistribution(2, 8)),  # ftlab's older spelling
        ("range(1, 3)", IntDistribution(1, 2)),  # Hydra's range stops before `stop`
        ("range(5)", IntDistribution(0, 4)),
        ("range(16, 129, 16)", IntDistribution(16, 128, step=16)),
        ("range(1, 10, 4)", IntDistribution(1, 9, step=4)),
        ("range(0.5, 5.5, 1.0)", FloatDistribution(0.5, 4.5, step=1.0)),  # the same rule
        ("float(range(1, 4))", FloatDistribution(1.0, 3.0, step=1.0)),
        ("shuffle(range(1, 4))", CategoricalDistribution([1, 2, 3])),
        ("range(3, 0, -1)", CategoricalDistribution([3, 2, 1])),
    ],
)
def test_hydra_grammar_becomes_the_distribution_it_means(text: str, expected) -> None:
    assert dist(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("interval(0.1, 0.001)", "low end above its high end"),
        ("tag(log, interval(0, 1))", "must be > 0"),
        ("range(3, 3)", "holds no value"),
        ("choice(", "cannot parse"),
    ],
)
def test_impossible_spaces_name_the_key(text: str, message: str) -> None:
    with pytest.raises(FtlabError, match=f"hydra.sweeper.params.k: .*{message}"):
        dist(text)


def test_the_grid_takes_ranges_discretized_and_refuses_continuous_params() -> None:
    space = parse_space(
        {"a": "range(0, 5, 2)", "b": "choice(x, y)", "c": "range(0.0, 0.3, 0.1)"}, None
    )
    grid = space.grid()
    assert grid["a"] == [0, 2, 4] and grid["b"] == ["x", "y"]
    assert [round(v, 10) for v in grid["c"]] == [0.0, 0.1, 0.2]
    with pytest.raises(FtlabError, match="grid sampler needs discrete params, but d"):
        parse_space({"d": "interval(0, 1)"}, None).grid()


def test_a_value_fixed_on_the_command_line_leaves_the_space() -> None:
    fixed, swept, values = split_arguments(
        ["optimizer=sgd", "optimizer.lr=tag(log, interval(1e-4, 1e-2))", "data.batch_size=16"]
    )
    assert fixed == ["optimizer=sgd", "data.batch_size=16"]
    assert swept == {"optimizer.lr": "tag(log, interval(1e-4, 1e-2))"}
    preset = {"optimizer": "choice(adamw, adam, sgd)", "optimizer.lr": "interval(1e-5, 1e-1)"}
    conditional = {"optimizer=sgd": {"optimizer.momentum": "interval(0.0, 0.99)"}}
    space = parse_space({**preset, **swept}, conditional, values)
    keys = {key: (d, c) for key, d, c in space.params}
    assert set(keys) == {"optimizer.lr", "optimizer.momentum"}  # sgd fixed: momentum always
    assert keys["optimizer.lr"][0] == FloatDistribution(1e-4, 1e-2, log=True)
    assert keys["optimizer.momentum"][1] is None
    adam = parse_space(preset, conditional, {"optimizer": "adam"})
    assert [key for key, _, _ in adam.params] == ["optimizer.lr"]


def _job(value=None, error: Exception | None = None) -> JobReturn:
    job = JobReturn()
    job.status = JobStatus.FAILED if error else JobStatus.COMPLETED
    job._return_value = error if error else value
    return job


def test_what_a_job_result_means_for_its_trial() -> None:
    assert judge(_job(0.0), 1).state == "COMPLETE" and judge(_job(0.0), 1).value == 0.0
    assert judge(_job({"value": 0.0, "pruned_at_epoch": None}), 1).values == [0.0]
    assert judge(_job({"value": 0.5, "pruned_at_epoch": 2}), 1).state == "PRUNED"
    assert judge(_job(None), 1).state == "FAIL"
    assert judge(_job(math.nan), 1).state == "FAIL"
    assert judge(_job([1.0, 2.0]), 2).values == [1.0, 2.0]
    assert "2 values for 1 objectives" in judge(_job([1.0, 2.0]), 1).error
    failed = judge(_job(error=RuntimeError("boom")), 1)
    assert failed.state == "FAIL" and "RuntimeError: boom" in failed.error


def test_samplers_by_ftlab_name_or_by_optuna_class() -> None:
    assert sampler_name({"_target_": "optuna.samplers.RandomSampler"}) == "random"
    assert sampler_name({"name": "qmc"}) == "qmc"
    with pytest.raises(FtlabError, match="unknown sampler 'magic'"):
        sampler_name({"name": "magic"})
    with pytest.raises(FtlabError, match="unknown pruner 'magic'"):
        build_pruner({"name": "magic"})


def test_workers_asking_at_once_get_other_seeds_but_one_worker_replays_its_own() -> None:
    """The seed moves with the study's size (counted under the study lock): trial n of any worker
    is sampled with seed + n. Two workers at the same instant ask for different n."""
    space = parse_space({"x": "interval(0, 1)"}, None)
    import optuna

    def point(seed_offset: int) -> float:
        study = optuna.create_study(
            sampler=build_sampler({"name": "random", "seed": 7}, seed_offset)
        )
        return space.sample(study.ask())["x"]

    assert point(0) == point(0) and point(0) != point(1)
