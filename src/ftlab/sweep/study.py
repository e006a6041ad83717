"""The Optuna study of a sweep: created once, then found again by every resume and every worker.

A study remembers what it searches (space, directions, the values fixed on the command line). A
sweep that differs from what the stored study searched would mix two experiments in one study
(and report a best from the old space), so it stops, naming the difference, unless asked to go on.
"""

from __future__ import annotations

import json
from typing import Any

import optuna

from ftlab.errors import FtlabError
from ftlab.sweep.storage import make_storage, study_lock

SETTINGS_ATTR = "ftlab.settings"  # study user attr: what this study searches


def open_study(
    url: str,
    name: str,
    directions: list[str],
    settings: dict[str, Any],
    continue_changed: bool,
    heartbeat_s: float,
    grace_s: float,
) -> tuple[optuna.Study, Any]:
    """(study, storage): created, or loaded and checked against `settings`."""
    with study_lock(url):  # the first of several workers creates the tables and the study
        storage = make_storage(url, heartbeat_s, grace_s)
        study = optuna.create_study(
            study_name=name, storage=storage, directions=directions, load_if_exists=True
        )
        stored = study.user_attrs.get(SETTINGS_ATTR)
        if stored is None or continue_changed:
            study.set_user_attr(SETTINGS_ATTR, _plain(settings))
        elif stored != _plain(settings):
            raise FtlabError(_changed_message(name, stored, _plain(settings)))
        study_directions = [d.name.lower() for d in study.directions]
        if study_directions != [d.lower() for d in directions]:
            raise FtlabError(
                f"hydra.sweeper.direction: study '{name}' was created with direction "
                f"{study_directions}, not {directions}; {_ways_out(name)}"
            )
    return study, storage


def _changed_message(name: str, stored: dict[str, Any], now: dict[str, Any]) -> str:
    for key in sorted(set(stored) | set(now)):
        if stored.get(key) != now.get(key):
            return (
                f"study '{name}' already holds trials of another sweep: its {key} was "
                f"{_short(stored.get(key))}, now {_short(now.get(key))}; "
                f"{_ways_out(name)}"
            )
    return f"study '{name}' already holds trials of another sweep; {_ways_out(name)}"


def _ways_out(name: str) -> str:
    return (
        "start a new study with hydra.sweeper.study_name=NEW, or add "
        "hydra.sweeper.continue_changed=true to go on with this one on purpose"
    )


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 200 else text[:197] + "..."


def _plain(value: Any) -> Any:
    """JSON-safe and order-free, as the storage gives it back."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))
