"""`ftlab reproduce RUN` and `ftlab resume RUN`.

Both fetch the run's logged config from the store, refuse it when it names untrusted code or keys
this ftlab does not know, and launch `python -m ftlab.train` on exactly that config. Nothing is
created before those checks pass.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import yaml

from ftlab.config.overrides import quote_override_value
from ftlab.config.trust import check_config_trust
from ftlab.errors import FtlabError
from ftlab.names import TAG_NUM_NODES, TAG_REPRODUCE_TOKEN, TAG_VERSION, TAG_WORLD_SIZE, TRIAL_KEY
from ftlab.reproduce.compat import check_known_keys
from ftlab.reproduce.handoff import ReproduceRequest, ResumeRequest, as_environment
from ftlab.reproduce.source import LoggedRun, artifact_text, fetch_run, last_checkpoint


def reproduce_command(
    run_ref: str,
    tracking_uri: str | None,
    check: bool,
    rtol: float | None,
    trust: bool,
    allow: list[str],
    allow_env: list[str] = (),
) -> int:
    """Run the logged config as a new run, then compare final metrics (and weights) side by side.
    Returns 1 under `check` when they differ beyond `rtol`."""
    from ftlab.reproduce.check import compare_runs, default_rtol

    client, uri = _client(tracking_uri)
    logged = _checked_run(client, run_ref, trust, allow, allow_env)
    check_world_size(logged.run, "reproduce")
    # The trial link belongs to the sweep that launched the run: a reproduction is not a trial.
    config = {k: v for k, v in logged.config.items() if k != TRIAL_KEY}
    request = ReproduceRequest(
        run_id=logged.run_id,
        token=uuid.uuid4().hex,
        store_checks=not trust,
        allowed_env=tuple(allow_env),
    )
    print(f"Reproducing run {logged.run.info.run_name} ({logged.run_id}) from {uri}")
    code = _launch(config, uri, as_environment(request), run_dir=None)
    new = _find_reproduction(client, logged, request.token)
    if new is None:
        print(f"error: the reproduction of {logged.run_id} did not start (exit {code})")
        return code or 1
    tolerance = default_rtol(logged.run, new) if rtol is None else rtol
    rows = compare_runs(logged.run, new, tolerance)
    _print_comparison(logged.run, new, rows, tolerance, _differences(client, new))
    if code != 0:
        return code
    mismatched = [row.key for row in rows if row.checked and not row.equal]
    if not rows:
        print("no final metrics in common to compare")
        return 1 if check else 0
    if mismatched:
        print(f"DIFFERENT beyond rtol={tolerance:g}: {', '.join(mismatched)}")
        return 1 if check else 0
    print(f"REPRODUCED: {len(rows)} values equal (rtol={tolerance:g})")
    return 0


def resume_command(
    run_ref: str,
    tracking_uri: str | None,
    trust: bool,
    allow: list[str],
    allow_env: list[str] = (),
) -> int:
    """Continue an interrupted run from its last checkpoint, into the same MLflow run."""
    client, uri = _client(tracking_uri)
    logged = _checked_run(client, run_ref, trust, allow, allow_env)
    if logged.status == "FINISHED":
        raise FtlabError(
            f"run {logged.run_id} is FINISHED: nothing to resume (to run it again: "
            f"ftlab reproduce {logged.run_id})"
        )
    check_world_size(logged.run, "resume")
    with tempfile.TemporaryDirectory(prefix="ftlab-resume-") as scratch:
        checkpoint = last_checkpoint(client, logged, Path(scratch))
        if logged.status == "RUNNING":
            print(
                f"note: run {logged.run_id} is still marked RUNNING (its process ended without "
                "closing it); make sure it is not running anywhere else"
            )
        # The same output folder keeps the best checkpoint and early-stopping state in step; the
        # tag comes from the store, so only a folder that holds an ftlab run is written into.
        run_dir = logged.output_dir if _is_run_folder(logged.output_dir) else None
        print(f"Resuming run {logged.run.info.run_name} ({logged.run_id}) from {checkpoint}")
        request = ResumeRequest(
            run_id=logged.run_id,
            checkpoint=str(checkpoint),
            store_checks=not trust,
            allowed_env=tuple(allow_env),
        )
        return _launch(logged.config, uri, as_environment(request), run_dir)


# ------------------------------------------------------------------ shared steps
def _client(tracking_uri: str | None) -> tuple[Any, str]:
    from mlflow.tracking import MlflowClient

    from ftlab.tracking.run import check_reachable
    from ftlab.tracking.store import resolve_tracking_uri

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise FtlabError(f"--tracking-uri: no tracking store at {uri}")
    return MlflowClient(uri), uri


def _checked_run(
    client: Any, run_ref: str, trust: bool, allow: list[str], allow_env: list[str]
) -> LoggedRun:
    """The run and its config, once the config passed the trust and version checks."""
    logged = fetch_run(client, run_ref)
    if not trust:
        check_config_trust(logged.config, allow, allow_env)
    made_by = logged.run.data.tags.get(TAG_VERSION, "unknown")
    check_known_keys(logged.config, logged.overrides, made_by)
    return logged


def check_world_size(run: Any, command: str) -> None:
    """A run trained by several nodes is run again by as many: launched on each node by torchrun
    or srun (their environment says the world size). Anything else is refused in one line."""
    world = int(run.data.tags.get(TAG_WORLD_SIZE, "1") or 1)
    nodes = int(run.data.tags.get(TAG_NUM_NODES, "1") or 1)
    if nodes <= 1:
        return  # one node: the config's own devices launch its processes
    here = int(os.environ.get("WORLD_SIZE") or os.environ.get("SLURM_NTASKS") or 1)
    if here != world:
        per_node = max(1, world // nodes)
        raise FtlabError(
            f"run {run.info.run_id} trained on {nodes} nodes x {per_node} processes (world size "
            f"{world}), this launch has world size {here}: run it the same way, on each node, "
            f"e.g. torchrun --nnodes {nodes} --nproc-per-node {per_node} --node-rank N "
            f"--master-addr HOST -m ftlab {command} {run.info.run_id}"
        )


def _is_run_folder(path: Path | None) -> bool:
    return path is not None and (path / ".hydra" / "config.yaml").is_file()


def _launch(
    config: dict[str, Any], tracking_uri: str, request_env: dict[str, str], run_dir: Path | None
) -> int:
    """`python -m ftlab.train` on exactly `config`, in the same store; returns its exit code."""
    with tempfile.TemporaryDirectory(prefix="ftlab-config-") as folder:
        Path(folder, "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        command = [sys.executable, "-m", "ftlab.train", "--config-path", folder]
        command += ["--config-name", "config"]
        if run_dir is not None:
            command.append(f"hydra.run.dir={quote_override_value(str(run_dir))}")
        env = {**os.environ, **request_env, "MLFLOW_TRACKING_URI": tracking_uri}
        return _run_forwarding_signals(command, env)


def _run_forwarding_signals(command: list[str], env: dict[str, str]) -> int:
    """Run the child in the foreground. Ctrl-C reaches it from the terminal already; a SIGTERM
    sent to this process is passed on, so the child can save a checkpoint and end KILLED."""
    child = subprocess.Popen(command, env=env)
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signum))
    try:
        return child.wait()
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


def _find_reproduction(client: Any, logged: LoggedRun, token: str) -> Any:
    from mlflow.entities import ViewType

    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    found = client.search_runs(
        experiments, filter_string=f"tags.`{TAG_REPRODUCE_TOKEN}` = '{token}'", max_results=1
    )
    return found[0] if found else None


def _differences(client: Any, run: Any) -> list[dict[str, str]]:
    from ftlab.reproduce.run_side import DIFFERENCES_ARTIFACT

    text = artifact_text(client, run.info.run_id, DIFFERENCES_ARTIFACT)
    if text is None:  # a run that failed before recording them
        return []
    return yaml.safe_load(text).get("differences", [])


def _print_comparison(
    original: Any, new: Any, rows: list[Any], rtol: float, differences: list[dict[str, str]]
) -> None:
    from rich.console import Console
    from rich.table import Table

    from ftlab.reproduce.differences import describe

    table = Table(title=f"original {original.info.run_id[:8]} vs reproduced {new.info.run_id[:8]}")
    for column in ("value", "original", "reproduced", f"equal (rtol={rtol:g})"):
        table.add_column(column)
    for row in rows:
        verdict = ("yes" if row.equal else "NO") if row.checked else "(not checked)"
        table.add_row(row.key, _fmt(row.original), _fmt(row.reproduced), verdict)
    console = Console()
    console.print(table)
    console.print(f"Differences: {describe(differences).strip()}")
    console.print(f"Reproduction: run {new.info.run_id} ({new.info.status})")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.9g}"
    return "-" if value is None else str(value)
