"""Optuna storages: a persistent SQLite file under ./mlruns by default, any RDB URL (PostgreSQL and
MySQL for many workers on many machines), or a journal file. RDB storages get heartbeats, so the
trials of a dead worker are failed and retried.

`study_lock` serializes what must not race between workers: creating the tables of an empty
database, and counting trials before asking for a new one (so `n_trials` is exact). SQLite and
journal files use a lock file beside them; PostgreSQL and MySQL a lock inside the database.
"""

from __future__ import annotations

import contextlib
import functools
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna

HEARTBEAT_S = 30
GRACE_S = 90
_LOCK_NAME = "ftlab-optuna-study"
_LOCK_KEY = zlib.crc32(_LOCK_NAME.encode())  # PostgreSQL advisory locks take an integer


def default_storage_url(root: str | Path | None = None) -> str:
    return f"sqlite:///{Path(root or os.getcwd()).resolve() / 'mlruns' / 'optuna.db'}"


def is_journal(url: str) -> bool:
    return url.startswith("journal:") or url.endswith(".log")


def make_storage(url: str, heartbeat_s: float = HEARTBEAT_S, grace_s: float = GRACE_S) -> Any:
    """`journal:PATH` or a `.log` path: a journal file; anything else: an RDB URL.

    One storage per process and settings: opening an RDB storage checks its schema (about 70 ms
    on SQLite), which the jobs of an in-process sweep would otherwise repeat every trial. The
    process id is part of the key, so a forked child never shares its parent's connections."""
    return _storage(url, float(heartbeat_s), float(grace_s), os.getpid())


@functools.cache
def _storage(url: str, heartbeat_s: float, grace_s: float, pid: int) -> Any:
    if is_journal(url):
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
        heartbeat_interval=int(heartbeat_s),
        grace_period=int(grace_s),
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
    )


@contextlib.contextmanager
def study_lock(url: str) -> Iterator[None]:
    """Hold the storage's lock for the block (one holder across processes and machines)."""
    if url.startswith(("postgresql", "postgres://")):
        with _database_lock(
            url, "SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"
        ):
            yield
    elif url.startswith("mysql"):
        with _database_lock(url, "SELECT GET_LOCK(:name, 600)", "SELECT RELEASE_LOCK(:name)"):
            yield
    else:
        from ftlab.filelock import exclusive

        with exclusive(lock_path(url)):
            yield


@contextlib.contextmanager
def _database_lock(url: str, acquire: str, release: str) -> Iterator[None]:
    from sqlalchemy import text

    arguments = {"key": _LOCK_KEY, "name": _LOCK_NAME}
    with lock_engine(url).connect() as connection:
        connection.execute(text(acquire), arguments)
        try:
            yield
        finally:
            connection.execute(text(release), arguments)
            connection.commit()


def lock_engine(url: str) -> Any:
    """The engine that takes the study lock inside a database: one per URL and process, the
    process id in the key as for storages, so a forked child never shares its parent's pooled
    connections."""
    return _engine(url, os.getpid())


@functools.cache
def _engine(url: str, pid: int) -> Any:
    from sqlalchemy import create_engine

    return create_engine(url, pool_pre_ping=True)


def lock_path(url: str) -> Path | None:
    """A file next to a local storage, locked while a worker counts and asks for trials."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///") + ".lock")
    if is_journal(url):
        return Path(url.removeprefix("journal:") + ".lock")
    return None
