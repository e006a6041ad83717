"""`ftlab ui`: the MLflow UI on this project's store, bound to 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys

from ftlab.tracking.store import local_artifact_root, prepare_local_store, resolve_tracking_uri


def server_command(tracking_uri: str, port: int, host: str = "127.0.0.1") -> list[str]:
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri]
    command += ["--host", host, "--port", str(port), "--workers", "1"]
    artifact_root = local_artifact_root(tracking_uri)
    if artifact_root:
        # New experiments made in the UI put artifacts beside the database, like ftlab's own.
        command += ["--default-artifact-root", artifact_root]
    return command


def serve(port: int, tracking_uri: str | None = None) -> int:
    uri = resolve_tracking_uri(tracking_uri)
    prepare_local_store(uri)
    print(
        f"MLflow UI for {uri}\n  http://127.0.0.1:{port}/#/experiments?workflowType=machine_learning\n(Ctrl-C stops it)"
    )
    try:
        return subprocess.call(server_command(uri, port))
    except KeyboardInterrupt:
        return 0
