"""Which MLflow store a run goes to, and where its artifacts live."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_STORE_DIR = "mlruns"
DEFAULT_DB_NAME = "mlflow.db"


def default_tracking_uri(root: str | Path | None = None) -> str:
    """SQLite under `<root>/mlruns/` (root: the directory the user runs from), as an absolute
    path so Hydra's per-run output directories never scatter stores."""
    store_dir = Path(root or os.getcwd()).resolve() / DEFAULT_STORE_DIR
    return f"sqlite:///{store_dir / DEFAULT_DB_NAME}"


def resolve_tracking_uri(configured: str | None, root: str | Path | None = None) -> str:
    """`MLFLOW_TRACKING_URI` in the environment wins, then the config, then the local default."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or default_tracking_uri(root)


def local_artifact_root(tracking_uri: str) -> str | None:
    """For a local SQLite store, artifacts live beside the database in `artifacts/`; remote
    servers choose their own (None)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db_path = Path(tracking_uri.removeprefix("sqlite:///"))
    return (db_path.parent / "artifacts").as_uri()


def prepare_local_store(tracking_uri: str) -> None:
    """Create a local SQLite store (directory, tables) if missing, one process at a time:
    parallel sweep workers starting on a fresh store would otherwise race on its tables."""
    if not tracking_uri.startswith("sqlite:///"):
        return
    from mlflow.tracking import MlflowClient

    from ftlab.filelock import exclusive

    db_path = Path(tracking_uri.removeprefix("sqlite:///"))
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(db_path.with_name(db_path.name + ".lock")):
        MlflowClient(tracking_uri).search_experiments(max_results=1)
