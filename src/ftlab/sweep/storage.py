"""Optuna storages: a persistent SQLite file under ./mlruns by default, any RDB URL, or a journal
file. RDB storages get heartbeats, so trials of a dead worker are failed and retried."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import optuna

HEARTBEAT_S = 30
GRACE_S = 90


def default_storage_url(root: str | Path | None = None) -> str:
    return f"sqlite:///{Path(root or os.getcwd()).resolve() / 'mlruns' / 'optuna.db'}"


def make_storage(url: str) -> Any:
    """`journal:PATH` or a `.log` path: a journal file; anything else: an RDB URL."""
    if url.startswith("journal:") or url.endswith(".log"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # Several workers share one file: wait for the write lock instead of failing at once.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    return optuna.storages.RDBStorage(
        url,
        engine_kwargs=engine_kwargs,
        heartbeat_interval=HEARTBEAT_S,
        grace_period=GRACE_S,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
    )


def lock_path(url: str) -> Path | None:
    """A file next to a local storage, locked while a worker counts and asks for trials."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///") + ".lock")
    if url.startswith("journal:") or url.endswith(".log"):
        return Path(url.removeprefix("journal:") + ".lock")
    return None
