"""`ftlab ui`: the MLflow UI on this project's store, bound to 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

from ftlab.tracking.store import local_artifact_root, prepare_local_store, resolve_tracking_uri


def ui_runs_link(experiment_id: str, port: int = 5000, host: str = "127.0.0.1") -> str:
    """The MLflow 3 UI's runs table of an experiment (its default page is the GenAI overview)."""
    return f"http://{host}:{port}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def server_command(tracking_uri: str, port: int, host: str = "127.0.0.1") -> list[str]:
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri]
    command += ["--host", host, "--port", str(port), "--workers", "1"]
    artifact_root = local_artifact_root(tracking_uri)
    if artifact_root:
        # New experiments made in the UI put artifacts beside the database, like ftlab's own.
        command += ["--default-artifact-root", artifact_root]
    return command


def serve(port: int, tracking_uri: str | None = None) -> int:
    """`ftlab ui`: the local store's server until Ctrl-C or SIGTERM."""
    uri = resolve_tracking_uri(tracking_uri)
    prepare_local_store(uri)
    return run_server(server_command(uri, port), "127.0.0.1", port, dict(os.environ), links=uri)


def run_server(
    command: list[str], host: str, port: int, env: dict[str, str], links: str | bool
) -> int:
    """Run an MLflow server until Ctrl-C or SIGTERM, which stop it (and its workers) too; once it
    answers, print the links (to `links`' most recent experiment's runs table when a store)."""
    import signal

    # MLflow's job workers (huey) serve GenAI features only; they cost five busy processes.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **env}
    server = subprocess.Popen(command, start_new_session=True, env=env)

    def stop(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if _wait_until_ready(server, host, port, 120):
            print(
                _links(links, port) if isinstance(links, str) else f"ready: http://{host}:{port}",
                flush=True,
            )
        code = server.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _stop_group(server)
    return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code


def _wait_until_ready(server: subprocess.Popen, host: str, port: int, timeout_s: float) -> bool:
    import time
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and server.poll() is None:
        try:
            probe = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            with urllib.request.urlopen(f"http://{probe}:{port}/health", timeout=2):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def _links(uri: str, port: int) -> str:
    from mlflow.tracking import MlflowClient

    from ftlab.redact import redact_text

    lines = [f"MLflow UI for {redact_text(uri)} (Ctrl-C stops it)"]
    client = MlflowClient(uri)
    recent = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        order_by=["attributes.start_time DESC"],
        max_results=1,
    ) if client.search_experiments() else []  # fmt: skip
    if recent:
        experiment = client.get_experiment(recent[0].info.experiment_id)
        lines.append(f"  runs of {experiment.name}: {ui_runs_link(experiment.experiment_id, port)}")
    lines.append(
        f"  all experiments: http://127.0.0.1:{port}/#/experiments?workflowType=machine_learning"
    )
    return "\n".join(lines)


def _stop_group(server: subprocess.Popen) -> None:
    """MLflow's server leaves worker processes (uvicorn, huey) behind unless its group stops."""
    import os
    import signal

    for signum, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signum)
        try:
            server.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
