"""Which MLflow store a run goes to, and where its artifacts live."""

from __future__ import annotations

import os
from pathlib import Path

from ftlab.config.store_uri import (  # noqa: F401 - re-exported for tracking's callers
    DEFAULT_DB_NAME,
    DEFAULT_STORE_DIR,
    check_store_kind,
    default_tracking_uri,
    resolve_tracking_uri,
)


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
    check_writable(db_path.parent, "logger.tracking_uri")
    with exclusive(db_path.with_name(db_path.name + ".lock")):
        MlflowClient(tracking_uri).search_experiments(max_results=1)


def check_store_location(tracking_uri: str, key: str = "logger.tracking_uri") -> None:
    """Before anything is built: a local store must be creatable where it is asked for. Nothing
    is created here (a run that fails later leaves no empty store behind)."""
    from ftlab.errors import FtlabError

    if not tracking_uri.startswith("sqlite:///"):
        return
    folder = Path(tracking_uri.removeprefix("sqlite:///")).parent
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        why = "a file is in the way" if not existing.is_dir() else "not writable"
        raise FtlabError(f"{key}: cannot write to the store directory {folder} ({why}: {existing})")


def check_writable(directory: Path, key: str) -> None:
    """Create `directory` if needed and prove a file can be written there, or fail naming it."""
    from ftlab.errors import FtlabError

    probe = directory / f".ftlab-write-check-{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise FtlabError(
            f"{key}: cannot write to the store directory {directory} ({err.strerror or err})"
        ) from None
