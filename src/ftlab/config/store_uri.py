"""Which MLflow store a config points at: the tracking URI, resolved the same way everywhere."""

from __future__ import annotations

import os
from pathlib import Path

from ftlab.errors import FtlabError

DEFAULT_STORE_DIR = "mlruns"
DEFAULT_DB_NAME = "mlflow.db"


def default_tracking_uri(root: str | Path | None = None) -> str:
    """SQLite under `<root>/mlruns/` (root: the directory the user runs from), as an absolute
    path so Hydra's per-run output directories never scatter stores."""
    store_dir = Path(root or os.getcwd()).resolve() / DEFAULT_STORE_DIR
    return f"sqlite:///{store_dir / DEFAULT_DB_NAME}"


def resolve_tracking_uri(configured: str | None, root: str | Path | None = None) -> str:
    """`MLFLOW_TRACKING_URI` in the environment wins, then the config, then the local default."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or configured or default_tracking_uri(root)
    check_store_kind(uri)
    return uri


def check_store_kind(uri: str) -> None:
    """MLflow 3.13+ refuses the file store (`./mlruns` as a folder of files): say so and what to
    use, instead of MLflow's traceback mid-run."""
    if "://" in uri and not uri.startswith("file:"):
        return
    raise FtlabError(
        f"logger.tracking_uri: '{uri}' is a file store, which MLflow 3.13+ no longer accepts; use "
        f"a database store such as sqlite:///{Path(uri.removeprefix('file://')).resolve()}/mlflow.db "
        "(or an http(s):// tracking server)"
    )
