"""scikit-learn's bundled 8x8 handwritten digits (1,797 images): a real image task that trains in
seconds. A class subset and a label fraction make transfer experiments: pretrain on 0-4, fine-tune
on 5-9 with few labels."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch

from ftlab.data.base import LoadedData, SplitDataModule, hash_bytes
from ftlab.names import CLASSIFICATION


class DigitsDataModule(SplitDataModule):
    modality = "image"

    def __init__(
        self, classes: list[int] | None = None, label_fraction: float = 1.0, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.classes = sorted(int(c) for c in classes) if classes is not None else list(range(10))
        self.label_fraction = label_fraction

    def load(self) -> LoadedData:
        all_images, all_targets = read_digits()
        keep = np.isin(all_targets, self.classes)
        images = torch.from_numpy(all_images[keep].astype(np.float32) / 16.0).unsqueeze(1)
        relabel = {digit: index for index, digit in enumerate(self.classes)}
        targets = np.asarray([relabel[d] for d in all_targets[keep]], dtype=np.int64)
        content_hash = hash_bytes(all_images.tobytes(), all_targets.tobytes(), str(self.classes))
        return LoadedData(
            list(images), targets, CLASSIFICATION, content_hash, [str(c) for c in self.classes]
        )

    def _random_splits(self, count: int) -> dict[str, np.ndarray]:
        splits = super()._random_splits(count)
        if self.label_fraction < 1:
            keep = max(1, int(round(len(splits["train"]) * self.label_fraction)))
            splits["train"] = splits["train"][:keep]
        return splits

    @property
    def fingerprint(self) -> str:
        return hash_bytes(super().fingerprint, str(self.label_fraction))

    def transform(self, split: str):
        if self.normalization is None:
            return None
        from torchvision.transforms import Normalize

        return Normalize(*self.normalization)


@functools.cache
def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images [1797, 8, 8] float64 in 0..16, targets int64): the values of
    `sklearn.datasets.load_digits()`, read from scikit-learn's bundled CSV without importing
    scikit-learn, whose import takes longer than a whole digits epoch."""
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    csv = (
        Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
        if spec and spec.origin
        else None
    )
    if csv is None or not csv.is_file():  # another layout: let scikit-learn read it
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target
    table = np.loadtxt(csv, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
