"""What a finished sweep leaves for people: plots, the trials table, the best config (or, with
several objectives, the Pareto front) and the command that retrains it."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf
from optuna.trial import TrialState

from ftlab.sweep.space import as_override

_PLOTS = (
    "plot_optimization_history",
    "plot_param_importances",
    "plot_parallel_coordinate",
    "plot_slice",
)


def write_plots(study: optuna.Study, directory: Path) -> list[Path]:
    """Optimization history, param importances, parallel coordinates and slice (or the Pareto
    front), as HTML with plotly embedded (it opens offline) and PNG. Plots that need more
    finished trials than the study has are skipped."""
    import matplotlib

    matplotlib.use("Agg")
    directory.mkdir(parents=True, exist_ok=True)
    multi = len(study.directions) > 1
    names = ("plot_pareto_front",) if multi else _PLOTS
    written = []
    for name in names:
        written += _plot(study, name, directory)
    return written


def _plot(study: optuna.Study, name: str, directory: Path) -> list[Path]:
    import matplotlib.pyplot as plt
    from optuna import visualization as interactive
    from optuna.visualization import matplotlib as static

    stem = name.removeprefix("plot_")
    try:
        getattr(interactive, name)(study).write_html(
            directory / f"{stem}.html", include_plotlyjs=True
        )
        axes = getattr(static, name)(study)
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
        figure.savefig(directory / f"{stem}.png", dpi=110, bbox_inches="tight")
    except (ValueError, RuntimeError, ZeroDivisionError):
        return []  # e.g. importances need two completed trials with varying params
    finally:
        plt.close("all")
    return [directory / f"{stem}.html", directory / f"{stem}.png"]


def trials_table(study: optuna.Study, path: Path) -> Path:
    values = "values" if len(study.directions) > 1 else "value"
    frame = study.trials_dataframe(
        attrs=("number", values, "state", "params", "user_attrs", "duration")
    )
    frame.to_csv(path, index=False)
    return path


def summarize_best(
    study: optuna.Study, plan: Any, sweep_dir: Path, retrain_fixed: list[str] | None
) -> list[Path]:
    """Print and save the best trial (or the Pareto front); returns the files written.
    `optimization_results.yaml` has hydra-optuna-sweeper's layout, for scripts that read it."""
    if len(plan.directions) > 1:
        best = study.best_trials
        print_pareto(study, best, plan.objectives)
        results = {
            "name": "optuna",
            "solutions": [
                {"params": t.params, "values": t.values, "trial": t.number} for t in best
            ],
        }
        chosen = [sorted(best, key=lambda t: t.number)[0]]
    else:
        print_top_trials(study)
        results = {
            "name": "optuna",
            "best_params": study.best_trial.params,
            "best_value": study.best_value,
        }
        chosen = [study.best_trial]
    path = sweep_dir / "optimization_results.yaml"
    path.write_text(OmegaConf.to_yaml(results))
    files = [path]
    best_overrides = [as_override(k, v) for k, v in chosen[0].params.items()]
    best_yaml = sweep_dir / "best_config.yaml"
    best_yaml.write_text(
        OmegaConf.to_yaml(
            {"values": chosen[0].values, "trial": chosen[0].number, "overrides": best_overrides}
        )
    )
    files.append(best_yaml)
    print(f"Best: trial {chosen[0].number}, values {_values(chosen[0].values)}; saved {best_yaml}")
    if retrain_fixed is not None:
        print(f"Retrain it: {retrain_command(retrain_fixed, best_overrides)}")
    else:
        print("Best overrides: " + " ".join(shlex.quote(o) for o in best_overrides))
    return files


def print_top_trials(study: optuna.Study, count: int = 5) -> None:
    from rich.console import Console
    from rich.table import Table

    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    reverse = study.direction == optuna.study.StudyDirection.MAXIMIZE
    best = sorted(done, key=lambda t: t.value, reverse=reverse)[:count]
    table = Table(title=f"top {len(best)} of {len(study.trials)} trials ({study.study_name})")
    table.add_column("trial")
    table.add_column("value", justify="right")
    table.add_column("params")
    for trial in best:
        table.add_row(str(trial.number), f"{trial.value:.5g}", _params(trial.params))
    Console(width=160).print(table)


def print_pareto(study: optuna.Study, best: list[Any], objectives: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Pareto front: {len(best)} of {len(study.trials)} trials")
    table.add_column("trial")
    for name in objectives:
        table.add_column(name, justify="right")
    table.add_column("params")
    for trial in sorted(best, key=lambda t: t.number):
        table.add_row(str(trial.number), *[f"{v:.5g}" for v in trial.values], _params(trial.params))
    Console(width=160).print(table)


def retrain_command(fixed_overrides: list[str], best_overrides: list[str]) -> str:
    return "ftlab train " + " ".join(shlex.quote(o) for o in [*fixed_overrides, *best_overrides])


def trial_line(
    done: int, total: int, trial: Any, outcome: Any, study: optuna.Study, params: dict[str, Any]
) -> str:
    shown = " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )
    line = f"[{done}/{total}] trial {trial.number} {outcome.state:<8} "
    if len(study.directions) > 1:
        return line + f"values={_values(outcome.values):<22} {shown}"
    complete = any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
    best = study.best_value if complete else None
    return line + f"value={_number(outcome.value):<10} best={_number(best):<10} {shown}"


def _number(value: Any) -> str:
    return f"{value:.5g}" if isinstance(value, float | int) else "—"


def _values(values: Any) -> str:
    return "[" + ", ".join(_number(v) for v in values) + "]" if values else "—"


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())
