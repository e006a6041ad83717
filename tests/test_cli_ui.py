"""`ftlab ui` serves the project's store on 127.0.0.1 and shows the runs ftlab wrote."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from conftest import (
    FTLAB,
    TINY_TEXT,
    cli_env,
    free_port,
    run_ftlab,
    stop_process_group,
    wait_until_healthy,
)


def test_ui_serves_the_local_store(workdir: Path) -> None:
    trained = run_ftlab(
        "train", *TINY_TEXT, "trainer.max_epochs=1", "hydra.run.dir=out", cwd=workdir
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    port = free_port()
    process = subprocess.Popen(
        [FTLAB, "ui", "--port", str(port)],
        cwd=workdir,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # one process group: the server and its workers stop together
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process)
        # Printed once the server answers, among the MLflow server's own lines.
        expected = f"http://127.0.0.1:{port}/#/experiments/1/runs?workflowType=machine_learning"
        lines = [process.stdout.readline()]
        while expected not in lines[-1] and len(lines) < 40 and lines[-1]:
            lines.append(process.stdout.readline())
        assert any(expected in line for line in lines), "".join(lines)
        request = urllib.request.Request(
            f"{url}/api/2.0/mlflow/runs/search",
            data=json.dumps({"experiment_ids": ["1"]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            runs = json.load(response)["runs"]
        assert len(runs) == 1 and runs[0]["info"]["status"] == "FINISHED"
        process.send_signal(signal.SIGTERM)  # to `ftlab ui` alone: it stops its server too
        assert process.wait(timeout=60) == 0
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{url}/health", timeout=5)
    finally:
        stop_process_group(process)
