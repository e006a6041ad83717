"""A run's metrics on local disk before they reach the tracking server.

Training writes every metric here first (one JSON line each, appended and flushed to the OS); a
background thread (`tracking/reporter.py`) sends what is new and records how far it got. So a
slow or absent server never stalls training, a kill -9 loses nothing already written, and
`ftlab sync RUN_DIR` can send whatever a run could not.

Layout of `<run output dir>/mlflow_spool/`: `metrics.jsonl` (key, value, timestamp, step),
`sent.offset` (bytes of metrics.jsonl the server has), `run.json` (run id, tracking URI, and the
final status once the run ended).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SPOOL_DIR = "mlflow_spool"
_METRICS, _OFFSET, _RUN = "metrics.jsonl", "sent.offset", "run.json"
_TAGS, ARTIFACTS, MODEL = "tags.json", "artifacts", "model"


class MetricSpool:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._writer: Any = None

    # ------------------------------------------------------------ the training side
    def append(self, metrics: Iterable[tuple[str, float, int, int]]) -> None:
        """Append (key, value, timestamp_ms, step) records; buffered until `commit`."""
        if self._writer is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            # Line-buffered: each record is one append, whole, even when a spawned DDP rank and
            # the system sampler append to the same file.
            self._writer = (self.directory / _METRICS).open("a", encoding="utf-8", buffering=1)
        for key, value, timestamp, step in metrics:
            self._writer.write(json.dumps([key, value, timestamp, step]) + "\n")

    def commit(self) -> None:
        """Hand what was appended to the OS: it survives the process (not a power cut)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_writer": None}  # a spawned DDP rank opens its own handle

    # ------------------------------------------------------------ the sending side
    def unsent(self, limit: int = 1000) -> tuple[list[tuple[str, float, int, int]], int]:
        """Up to `limit` complete records not sent yet, and the offset just after them."""
        path = self.directory / _METRICS
        offset = self.sent_offset()
        if not path.is_file() or path.stat().st_size <= offset:
            return [], offset
        records = []
        with path.open("rb") as handle:
            handle.seek(offset)
            while len(records) < limit:
                line = handle.readline()
                if not line.endswith(b"\n"):  # a line being written: next time
                    break
                offset += len(line)
                key, value, timestamp, step = json.loads(line)
                records.append((str(key), float(value), int(timestamp), int(step)))
        return records, offset

    def sent_offset(self) -> int:
        try:
            return int((self.directory / _OFFSET).read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def mark_sent(self, offset: int) -> None:
        _write_atomically(self.directory / _OFFSET, str(offset))

    def pending(self) -> bool:
        """Whether a complete record waits to be sent. A record that a killed process left cut
        short never completes: waiting for it would wait forever."""
        path = self.directory / _METRICS
        offset = self.sent_offset()
        if not path.is_file() or path.stat().st_size <= offset:
            return False
        with path.open("rb") as handle:
            handle.seek(offset)
            while chunk := handle.read(1 << 16):
                if b"\n" in chunk:
                    return True
        return False

    # ------------------------------------------------------------ the end of a run, kept for later
    def add_tags(self, tags: dict[str, str]) -> None:
        _update_json(self.directory / _TAGS, tags)

    def tags(self) -> dict[str, str]:
        return _read_json(self.directory / _TAGS)

    def keep_artifact(self, path: Path, artifact_path: str | None) -> None:
        import shutil

        destination = self.directory / ARTIFACTS / (artifact_path or "")
        destination.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, destination / path.name, dirs_exist_ok=True)
        elif path.is_file():
            shutil.copy2(path, destination / path.name)

    def keep_text(self, text: str, artifact_file: str) -> None:
        target = self.directory / ARTIFACTS / artifact_file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    # ------------------------------------------------------------ facts about the run
    def write_run(self, facts: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        _update_json(self.directory / _RUN, facts)

    def read_run(self) -> dict[str, Any]:
        return _read_json(self.directory / _RUN)


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object the spool keeps ({} when not written yet or cut short by a kill)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _update_json(path: Path, entries: dict[str, Any]) -> None:
    _write_atomically(path, json.dumps({**_read_json(path), **entries}))


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text)
    os.replace(partial, path)
