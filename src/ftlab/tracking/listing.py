"""`ftlab runs` and `ftlab compare`: the store, read from a terminal."""

from __future__ import annotations

from typing import Any

from ftlab.errors import FtlabError
from ftlab.names import TAG_TRIAL_STATE, TAG_WEIGHTS
from ftlab.tracking.record import is_location
from ftlab.tracking.store import resolve_tracking_uri

KEY_PARAMS = {
    "optimizer._target_": "optimizer",
    "optimizer.lr": "lr",
    "finetune.name": "finetune",
    "trainer.max_epochs": "epochs",
}


def _client(tracking_uri: str | None):
    """A client for the store, once a server there answers (a dead one fails in one line that
    shows the URI without its password, not in MLflow's traceback that shows it whole)."""
    from mlflow.tracking import MlflowClient

    from ftlab.tracking.run import check_reachable

    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    return MlflowClient(uri)


def find_runs(
    tracking_uri: str | None, experiment: str | None, sort: str | None, limit: int
) -> list[Any]:
    from mlflow.entities import ViewType

    client = _client(tracking_uri)
    experiments = client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
    if experiment:
        experiments = [e for e in experiments if e.name == experiment]
        if not experiments:
            raise FtlabError(f"--experiment: no experiment named '{experiment}'")
    if not experiments:
        return []
    ids = [e.experiment_id for e in experiments]
    if sort:
        _check_sort_metric(client, ids, sort)
    order = (
        [f"metrics.`{sort}` {'DESC' if _higher_is_better(sort) else 'ASC'}"]
        if sort
        else ["attributes.start_time DESC"]
    )
    return client.search_runs(ids, order_by=order, max_results=limit)


def _check_sort_metric(client: Any, experiment_ids: list[str], sort: str) -> None:
    recent = client.search_runs(experiment_ids, max_results=200)
    known = sorted({k for r in recent for k in r.data.metrics if not k.startswith("system/")})
    if sort not in known:
        shown = ", ".join(k for k in known if k.startswith(("val/", "test/"))) or ", ".join(known)
        raise FtlabError(f"--sort: no run has the metric '{sort}' (known: {shown or 'none'})")


def _higher_is_better(metric: str) -> bool:
    return any(word in metric for word in ("acc", "f1", "pearson", "auroc", "r2"))


def resolve_run(client: Any, run_ref: str) -> Any:
    """A run by id, or by its (unique) run name."""
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_ref)
    except MlflowException:
        pass
    ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    matches = (
        client.search_runs(ids, filter_string=f"attributes.run_name = '{run_ref}'") if ids else []
    )
    if len(matches) != 1:
        raise FtlabError(
            f"run '{run_ref}': {'no run' if not matches else 'several runs'} with that id or name"
        )
    return matches[0]


def run_status(run: Any, now_s: float | None = None) -> str:
    """The run's status; a RUNNING run whose heartbeat stopped is shown as `DEAD?`."""
    import time

    from ftlab.names import TAG_HEARTBEAT
    from ftlab.tracking.reporter import HEARTBEAT_S

    status = run.info.status
    if status != "RUNNING":
        return status
    now_s = time.time() if now_s is None else now_s
    beat = run.data.tags.get(TAG_HEARTBEAT)
    last = float(beat) if beat else run.info.start_time / 1000
    if now_s - last > 4 * HEARTBEAT_S:
        return "DEAD?"
    return status


def print_runs(runs: list[Any], sort: str | None, experiment_names: dict[str, str]) -> None:
    from datetime import datetime

    from rich.console import Console
    from rich.table import Table

    metric_names = sorted({k for r in runs for k in r.data.metrics if k.startswith("test/")}) or [
        "val/loss"
    ]
    if sort and sort not in metric_names:
        metric_names.insert(0, sort)
    table = Table(title=f"{len(runs)} runs")
    columns = ("id", "experiment", "started", "run", "status", "trial", *KEY_PARAMS.values())
    for column in (*columns, *metric_names):
        table.add_column(column)
    for run in runs:
        started = datetime.fromtimestamp(run.info.start_time / 1000).strftime("%Y-%m-%d %H:%M")
        params = [_param_cell(key, run.data.params.get(key, "")) for key in KEY_PARAMS]
        metrics = [_fmt(run.data.metrics.get(k)) for k in metric_names]
        table.add_row(
            run.info.run_id[:8],
            experiment_names.get(run.info.experiment_id, run.info.experiment_id),
            started,
            run.info.run_name,
            run_status(run),
            run.data.tags.get(TAG_TRIAL_STATE, ""),
            *params,
            *metrics,
        )
    console = Console(width=220)
    console.print(table)
    for run in runs:
        if run_status(run) == "DEAD?":
            console.print(
                f"{run.info.run_name}: RUNNING in the store, but its process stopped sending "
                f"heartbeats (killed?). Resume: ftlab resume {run.info.run_id}",
                soft_wrap=True,
            )


def _param_cell(key: str, value: str) -> str:
    if key.endswith("_target_"):
        return str(value).rsplit(".", 1)[-1]
    if key.endswith(".lr"):
        try:
            return f"{float(value):.0e}".replace("e-0", "e-").replace("e+0", "e")
        except ValueError:
            return str(value)
    return str(value)


def print_comparison(runs: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    names = [r.info.run_name for r in runs]
    keys = sorted({k for r in runs for k in r.data.params if not is_location(k)})
    differing = [k for k in keys if len({r.data.params.get(k) for r in runs}) > 1]
    params = Table(title=f"config differences ({len(differing)} of {len(keys)} params)")
    params.add_column("param")
    for name in names:
        params.add_column(name)
    for key in differing:
        params.add_row(key, *[str(r.data.params.get(key, "—")) for r in runs])
    params.add_row("weights sha256", *[str(r.data.tags.get(TAG_WEIGHTS, "—"))[:16] for r in runs])
    metrics = Table(title=f"final metrics (Δ against {names[0]})")
    metrics.add_column("metric")
    for name in names:
        metrics.add_column(name, justify="right")
    for key in sorted({k for r in runs for k in r.data.metrics if k.startswith(("val/", "test/"))}):
        base = runs[0].data.metrics.get(key)
        cells = [_fmt(runs[0].data.metrics.get(key))]
        for run in runs[1:]:
            value = run.data.metrics.get(key)
            delta = f" ({value - base:+.4f})" if value is not None and base is not None else ""
            cells.append(_fmt(value) + delta)
        metrics.add_row(key, *cells)
    console = Console(width=200)
    console.print(params)
    console.print(metrics)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def runs_command(
    tracking_uri: str | None, experiment: str | None, sort: str | None, limit: int
) -> int:
    from mlflow.entities import ViewType

    runs = find_runs(tracking_uri, experiment, sort, limit)
    experiments = _client(tracking_uri).search_experiments(view_type=ViewType.ALL)
    print_runs(runs, sort, {e.experiment_id: e.name for e in experiments})
    return 0


def compare_command(tracking_uri: str | None, run_refs: list[str]) -> int:
    client = _client(tracking_uri)
    print_comparison([resolve_run(client, ref) for ref in run_refs])
    return 0
