"""Shared test helpers: the `ftlab` command as a user types it, and the MLflow store it wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FTLAB = str(Path(sys.executable).parent / "ftlab")
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

# Overrides that make a run take seconds: tiny random-init models, a slice of the data.
TINY_TEXT = [
    "model=tiny_bert",
    "data.max_samples=240",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=2",
]
TINY_DIGITS = [
    "data.max_samples=300",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=2",
    "model.backbone.width=8",
]
TINY_DIGITS_RUN = ["experiment=digits_scratch", *TINY_DIGITS]


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


def run_ftlab(
    *args: str, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `ftlab ARGS...` in `cwd` (where its ./mlruns store lands) and capture its output."""
    return subprocess.run(
        [FTLAB, *args],
        cwd=cwd,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def local_store(cwd: Path) -> str:
    return f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}"


def all_runs(tracking_uri: str) -> list:
    """Every run of every experiment in the store ([] when the store was never created)."""
    if (
        tracking_uri.startswith("sqlite:///")
        and not Path(tracking_uri.removeprefix("sqlite:///")).exists()
    ):
        return []
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiments = client.search_experiments(view_type=ViewType.ALL)
    if not experiments:
        return []
    return client.search_runs([e.experiment_id for e in experiments], run_view_type=ViewType.ALL)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty directory to run ftlab from, as a user's project directory."""
    return tmp_path


@pytest.fixture(scope="session")
def digits_image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real digits written as PNG files in class folders: ROOT/<digit>/<n>.png (3 classes)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digit_images")
    digits = load_digits()
    for digit in (0, 1, 2):
        folder = root / str(digit)
        folder.mkdir()
        for n, image in enumerate(digits.images[digits.target == digit][:20]):
            Image.fromarray((image * 255 / 16).astype("uint8")).resize((32, 32)).save(
                folder / f"{n}.png"
            )
    return root


@pytest.fixture(scope="session")
def vader_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user-style CSV made from real VADER words: columns word, label (negative/positive)."""
    import csv

    from ftlab.data.vader import lexicon_text, parse_lexicon

    tokens, valences = parse_lexicon(lexicon_text())
    path = tmp_path_factory.mktemp("csv") / "words.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["word", "label", "valence"])
        for token, valence in list(zip(tokens, valences, strict=True))[:400]:
            if abs(valence) > 0.5:
                writer.writerow(
                    [token, "positive" if valence > 0 else "negative", f"{valence:.2f}"]
                )
    return path


@pytest.fixture(scope="session")
def digits_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ftlab checkpoint: the digits CNN trained one epoch on digits 0-4 (no tracking)."""
    workdir = tmp_path_factory.mktemp("pretrain")
    result = run_ftlab(
        "train",
        "experiment=digits_pretrain",
        "data.max_samples=200",
        "trainer.max_epochs=1",
        "logger=none",
        "hydra.run.dir=out",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return workdir / "out" / "checkpoints" / "best.ckpt"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(url: str, process, seconds: float = 90) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the MLflow server exited early"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not become healthy in {seconds} s")


def stop_process_group(process) -> None:
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `mlflow server` on 127.0.0.1: SQLite backend, proxied artifacts; stopped by PID."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        command,
        cwd=root,
        env=cli_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process)
        yield url
    finally:
        stop_process_group(process)
        log.close()


@pytest.fixture(scope="session")
def logged_digits_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(model URI, tracking URI) of a tiny digits run logged to a local store."""
    workdir = tmp_path_factory.mktemp("logged_model")
    result = run_ftlab(
        "train", *TINY_DIGITS_RUN, "trainer.max_epochs=1", "hydra.run.dir=out", cwd=workdir
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = all_runs(local_store(workdir))
    return run.data.tags["ftlab.model_uri"], local_store(workdir)
