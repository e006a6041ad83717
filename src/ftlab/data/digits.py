"""scikit-learn's bundled 8x8 handwritten digits (1,797 images): a real image task that trains in
seconds. A class subset and a label fraction make transfer experiments: pretrain on 0-4, fine-tune
on 5-9 with few labels."""

from __future__ import annotations

import numpy as np
import torch

from ftlab.data.base import CLASSIFICATION, LoadedData, SplitDataModule, hash_bytes


class DigitsDataModule(SplitDataModule):
    modality = "image"

    def __init__(
        self, classes: list[int] | None = None, label_fraction: float = 1.0, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.classes = sorted(int(c) for c in classes) if classes is not None else list(range(10))
        self.label_fraction = label_fraction

    def load(self) -> LoadedData:
        from sklearn.datasets import load_digits

        digits = load_digits()
        keep = np.isin(digits.target, self.classes)
        images = torch.from_numpy(digits.images[keep].astype(np.float32) / 16.0).unsqueeze(1)
        relabel = {digit: index for index, digit in enumerate(self.classes)}
        targets = np.asarray([relabel[d] for d in digits.target[keep]], dtype=np.int64)
        content_hash = hash_bytes(
            digits.images.tobytes(), digits.target.tobytes(), str(self.classes)
        )
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
