"""A user's own CSV/TSV file: one text column and one label column, for classification or
regression."""

from __future__ import annotations

import contextlib
import csv
import io
import sys
from pathlib import Path

import numpy as np

from ftlab.data.base import LoadedData, SplitDataModule, hash_bytes
from ftlab.errors import FtlabError
from ftlab.names import CLASSIFICATION, REGRESSION

# A single text field may be long (a document); csv's default limit of 128 KiB is for safety
# against runaway quoting, which DictReader then reports as a csv.Error naming the line.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class CsvDataModule(SplitDataModule):
    modality = "text"

    def __init__(
        self,
        path: str,
        text_column: str = "text",
        label_column: str = "label",
        task: str = "classification",
        delimiter: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.path = Path(path).expanduser()
        self.text_column, self.label_column = text_column, label_column
        self.label_task = str(getattr(task, "value", task))
        self.delimiter = delimiter or ("\t" if self.path.suffix.lower() == ".tsv" else ",")

    def load(self) -> LoadedData:
        if not self.path.is_file():
            raise FtlabError(f"data.path: no such file {self.path}")
        raw = self.path.read_bytes()
        rows, columns = self._rows(raw)
        if not rows:
            raise FtlabError(f"data.path: {self.path} has a header but no rows")
        for key, column in (("text_column", self.text_column), ("label_column", self.label_column)):
            if column not in columns:
                raise FtlabError(
                    f"data.{key}: column '{column}' not in {self.path} (columns: {', '.join(columns)})"
                )
        texts = [row[self.text_column] or "" for row in rows]
        labels = [(row[self.label_column] or "").strip() for row in rows]
        content_hash = hash_bytes(raw, self.text_column, self.label_column, self.label_task)
        if self.label_task == REGRESSION:
            return LoadedData(texts, self._values(labels), REGRESSION, content_hash)
        empty = [line for line, label in enumerate(labels, start=2) if not label]
        if empty:
            raise FtlabError(
                f"data.label_column '{self.label_column}' is empty in {self._where(empty)}"
            )
        class_names = sorted(set(labels))
        index = {name: i for i, name in enumerate(class_names)}
        targets = np.asarray([index[v] for v in labels], dtype=np.int64)
        return LoadedData(texts, targets, CLASSIFICATION, content_hash, class_names)

    def _rows(self, raw: bytes) -> tuple[list[dict[str, str]], list[str]]:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise FtlabError(
                f"data.path: {self.path} is not UTF-8 text ({err.reason} at byte {err.start})"
            ) from None
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=self.delimiter)
        try:
            rows = list(reader)
        except csv.Error as err:
            raise FtlabError(f"data.path: {self.path} line {reader.line_num}: {err}") from None
        return rows, list(reader.fieldnames or [])

    def _values(self, labels: list[str]) -> np.ndarray:
        """Regression targets; rows that are not finite numbers are named (line 2 is the first row)."""
        values = np.full(len(labels), np.nan, dtype=np.float64)
        for index, label in enumerate(labels):
            with contextlib.suppress(ValueError):
                values[index] = float(label)
        bad = [line for line, value in enumerate(values, start=2) if not np.isfinite(value)]
        if bad:
            raise FtlabError(
                f"data.label_column '{self.label_column}' is not a finite number in {self._where(bad)}"
            )
        return values.astype(np.float32)

    def _where(self, lines: list[int]) -> str:
        shown = ", ".join(str(line) for line in lines[:5])
        more = f" (+{len(lines) - 5} more)" if len(lines) > 5 else ""
        return f"{self.path} line {shown}{more}"
