"""What a finished sweep leaves for people: plots, the trials table, the best config and the
command that retrains it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna


def write_plots(study: optuna.Study, directory: Path) -> list[Path]:
    """Optimization history, param importances, parallel coordinates and slice, as HTML and PNG.
    Plots that need more finished trials than the study has are skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna import visualization as interactive
    from optuna.visualization import matplotlib as static

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in (
        "plot_optimization_history",
        "plot_param_importances",
        "plot_parallel_coordinate",
        "plot_slice",
    ):
        stem = name.removeprefix("plot_")
        try:
            getattr(interactive, name)(study).write_html(
                directory / f"{stem}.html", include_plotlyjs="cdn"
            )
            written.append(directory / f"{stem}.html")
            axes = getattr(static, name)(study)
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
            figure.savefig(directory / f"{stem}.png", dpi=110, bbox_inches="tight")
            plt.close("all")
            written.append(directory / f"{stem}.png")
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue  # e.g. importances need two completed trials with varying params
    return written


def trials_table(study: optuna.Study, path: Path) -> Path:
    frame = study.trials_dataframe(
        attrs=("number", "value", "state", "params", "user_attrs", "duration")
    )
    frame.to_csv(path, index=False)
    return path


def print_top_trials(study: optuna.Study, count: int = 5) -> None:
    from rich.console import Console
    from rich.table import Table

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    reverse = study.direction == optuna.study.StudyDirection.MAXIMIZE
    best = sorted(done, key=lambda t: t.value, reverse=reverse)[:count]
    table = Table(title=f"top {len(best)} of {len(study.trials)} trials ({study.study_name})")
    table.add_column("trial")
    table.add_column("value", justify="right")
    table.add_column("params")
    for trial in best:
        table.add_row(
            str(trial.number),
            f"{trial.value:.5g}",
            " ".join(f"{k}={v}" for k, v in trial.params.items()),
        )
    Console(width=160).print(table)


def retrain_command(fixed_overrides: list[str], best_overrides: list[str]) -> str:
    import shlex

    return "ftlab train " + " ".join(shlex.quote(o) for o in [*fixed_overrides, *best_overrides])


def trial_line(
    done: int, total: int, trial: Any, state: str, value: Any, best: Any, params: dict[str, Any]
) -> str:
    shown = " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )
    value_text = f"{value:.5g}" if isinstance(value, float) else "—"
    best_text = f"{best:.5g}" if isinstance(best, float) else "—"
    return f"[{done}/{total}] trial {trial.number} {state:<8} value={value_text:<10} best={best_text:<10} {shown}"
