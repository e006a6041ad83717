"""Shared test helpers: the `ftlab` command as a user types it, and the MLflow store it wrote."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
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


# Under `pytest -n N` (pytest-xdist) N tests run at once, each starting ftlab processes: one
# thread each for torch's and BLAS's pools keeps N workers from oversubscribing N cores.
PARALLEL_TESTS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1
if PARALLEL_TESTS:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

# The machine's temp folder, for what another user (PostgreSQL's) must enter; set before the
# suite's own temp folder replaces it below.
SYSTEM_TMP = tempfile.gettempdir()


@pytest.fixture(scope="session", autouse=True)
def suite_temp_folder(tmp_path_factory: pytest.TempPathFactory):
    """Everything the suite's processes put in the temp folder (MLflow downloads a loaded model
    to a folder it never removes) lands under pytest's base folder, removed after a passing run
    (`tmp_path_retention_policy`): repeated runs must not fill a shared disk."""
    folder = tmp_path_factory.mktemp("tmp")
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"], tempfile.tempdir = str(folder), str(folder)
    yield folder
    tempfile.tempdir = None
    if saved is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # As in an activated virtualenv: tools that MLflow starts by name (uvicorn) are found.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    # MLflow servers in tests: no background job workers (GenAI features, five busy processes).
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
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


def store_run(
    workdir: Path,
    config: dict | None,
    status: str = "FINISHED",
    overrides: list[str] | None = None,
    **tags: str,
) -> str:
    """A run as another tool, another ftlab or an attacker would have left it in the local store:
    a logged `.hydra/config.yaml` (and overrides) and nothing else."""
    import yaml
    from mlflow.tracking import MlflowClient

    client = MlflowClient(local_store(workdir))
    (workdir / "mlruns").mkdir(exist_ok=True)
    experiment = client.get_experiment_by_name("elsewhere")
    experiment_id = (
        experiment.experiment_id if experiment else client.create_experiment("elsewhere")
    )
    run = client.create_run(experiment_id, tags=tags)
    if config is not None:
        client.log_text(run.info.run_id, yaml.safe_dump(config), ".hydra/config.yaml")
        logged = TINY_DIGITS_RUN if overrides is None else overrides
        client.log_text(run.info.run_id, yaml.safe_dump(list(logged)), ".hydra/overrides.yaml")
    client.set_terminated(run.info.run_id, status=status)
    return run.info.run_id


def refused(workdir: Path, *args: str) -> str:
    """Run `ftlab ARGS` expecting a refusal: exit 2, no new run, no training; its one line."""
    before = len(all_runs(local_store(workdir)))
    result = run_ftlab(*args, cwd=workdir)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(all_runs(local_store(workdir))) == before, "a run was created"
    assert not (workdir / "outputs").exists(), "training started"
    return result.stderr.strip().splitlines()[-1]


def tiny_config() -> dict:
    """The config `ftlab train TINY_DIGITS_RUN` composes, as logged (interpolations kept)."""
    from omegaconf import OmegaConf

    from ftlab.config.setup import compose_train

    return OmegaConf.to_container(compose_train(TINY_DIGITS_RUN), resolve=False)


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
        with contextlib.suppress(ProcessLookupError):  # the group may be gone already
            os.killpg(process.pid, signal.SIGKILL)


def start_mlflow_server(root: Path, port: int) -> subprocess.Popen:
    """A real `mlflow server` on 127.0.0.1 (SQLite backend in `root`, proxied artifacts), once it
    answers; the same `root` and port start it again over the same store."""
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with (root / "server.log").open("a") as log:
        process = subprocess.Popen(
            command, cwd=root, env=cli_env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    wait_until_healthy(f"http://127.0.0.1:{port}", process)
    return process


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `mlflow server` for the session; stopped by PID."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    process = start_mlflow_server(root, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(process)


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


# ------------------------------------------------------------------ PostgreSQL
def postgres_bin() -> Path:
    """The folder of the Debian `postgresql` package's server binaries (not on PATH for everyone)."""
    import shutil

    found = shutil.which("pg_config")
    if found:
        candidate = Path(
            subprocess.run([found, "--bindir"], capture_output=True, text=True).stdout.strip()
        )
        if (candidate / "initdb").is_file():
            return candidate
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").is_file():
            return candidate
    raise AssertionError(
        "PostgreSQL's server is not installed: `make setup` installs the Debian postgresql package"
    )


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory):
    """A real PostgreSQL server: initdb + pg_ctl on 127.0.0.1, a free port, a temp dir, run as the
    `postgres` user when the tests run as root (initdb refuses root); stopped by PID. Yields a
    function making a fresh, empty database and returning its URL."""
    import getpass
    import shutil
    import time

    bindir = postgres_bin()
    root = Path(tempfile_dir("ftlab-pg-"))
    data = root / "data"
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    user = "postgres" if os.geteuid() == 0 else getpass.getuser()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    password = "pg-test-s3cret"
    (root / "pw").write_text(password)
    if os.geteuid() == 0:
        shutil.chown(root / "pw", "postgres")
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", user, "--auth=scram-sha-256",
         f"--pwfile={root / 'pw'}", "-E", "UTF8"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    options = f"-h 127.0.0.1 -p {port} -k {root} -c max_connections=200"
    subprocess.run(
        [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"),
         "-w", "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    pid = int((data / "postmaster.pid").read_text().split()[0])
    counter = iter(range(1000))

    def new_database(name: str | None = None) -> str:
        from sqlalchemy import create_engine, text

        name = name or f"db{next(counter)}"
        admin = create_engine(
            f"postgresql://{user}:{password}@127.0.0.1:{port}/postgres",
            isolation_level="AUTOCOMMIT",
        )
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return f"postgresql://{user}:{password}@127.0.0.1:{port}/{name}"

    try:
        yield new_database
    finally:
        import signal

        os.kill(pid, signal.SIGTERM)  # smart shutdown: waits for clients to leave
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def small_disk(folder: Path, options: str) -> Iterator[Path]:
    """A tmpfs at `folder` with mount `options` (size=, nr_inodes=): a disk that fills up.
    Mounting needs root (CI runs as root); elsewhere the test is skipped, saying why."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True, text=True,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def tempfile_dir(prefix: str) -> str:
    """A temp dir any user can enter (pytest's tmp_path is private to root)."""
    folder = tempfile.mkdtemp(prefix=prefix, dir=SYSTEM_TMP)
    os.chmod(folder, 0o755)
    return folder
