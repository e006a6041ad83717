"""A user's own CSV/TSV file: one text column and one label column, for classification or
regression."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ftlab.data.base import CLASSIFICATION, REGRESSION, LoadedData, SplitDataModule, hash_bytes
from ftlab.errors import FtlabError


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
        rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines(), delimiter=self.delimiter))
        columns = list(rows[0].keys()) if rows else []
        for key, column in (("text_column", self.text_column), ("label_column", self.label_column)):
            if column not in columns:
                raise FtlabError(
                    f"data.{key}: column '{column}' not in {self.path} (columns: {', '.join(columns)})"
                )
        texts = [row[self.text_column] or "" for row in rows]
        labels = [(row[self.label_column] or "").strip() for row in rows]
        content_hash = hash_bytes(raw, self.text_column, self.label_column, self.label_task)
        if self.label_task == REGRESSION:
            try:
                values = np.asarray([float(v) for v in labels], dtype=np.float32)
            except ValueError as err:
                raise FtlabError(
                    f"data.label_column '{self.label_column}' in {self.path}: {err}"
                ) from None
            return LoadedData(texts, values, REGRESSION, content_hash)
        class_names = sorted(set(labels))
        index = {name: i for i, name in enumerate(class_names)}
        targets = np.asarray([index[v] for v in labels], dtype=np.int64)
        return LoadedData(texts, targets, CLASSIFICATION, content_hash, class_names)
