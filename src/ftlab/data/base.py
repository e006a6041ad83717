"""The data module every source shares: deterministic splits, a content fingerprint, loaders.

A source only says how to read its examples (`load`); this class splits them by `split_seed`,
fingerprints what was loaded so tracking can tell two datasets apart, and turns raw examples into
batches with the preprocessing the chosen backbone asks for (tokenizer or image tensors).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ftlab.data.sampling import EpochShuffle
from ftlab.errors import FtlabError
from ftlab.names import CLASSIFICATION


@dataclass
class LoadedData:
    """What a source hands back: examples with targets, plus facts the model needs."""

    examples: Sequence[Any]  # strings for text, tensors or file paths for images
    targets: np.ndarray  # int class indices or float values
    task: str  # REGRESSION or CLASSIFICATION
    content_hash: str  # hash of the raw content read (files, parameters of the selection)
    class_names: list[str] = field(default_factory=list)
    fixed_splits: dict[str, np.ndarray] | None = (
        None  # split name -> indices, when the source has its own
    )


class _Examples(Dataset):
    def __init__(self, examples: Sequence[Any], targets: np.ndarray, transform: Callable | None):
        self.examples, self.targets, self.transform = examples, targets, transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        example = self.examples[index]
        if self.transform is not None:
            example = self.transform(example)
        return example, self.targets[index]


class Collate:
    """Batches (example, target) pairs; picklable so DataLoader workers can use it."""

    def __init__(self, inputs_fn: Callable[[list[Any]], Any], target_dtype: torch.dtype):
        self.inputs_fn, self.target_dtype = inputs_fn, target_dtype

    def __call__(self, batch: list[tuple[Any, Any]]) -> tuple[Any, torch.Tensor]:
        examples, targets = zip(*batch, strict=True)
        return self.inputs_fn(list(examples)), torch.as_tensor(
            np.asarray(targets), dtype=self.target_dtype
        )


class SplitDataModule(L.LightningDataModule):
    """Base of every ftlab data module. Subclasses implement `load` and set `modality`."""

    modality = "text"  # "text" or "image": which backbones can read it

    def __init__(
        self,
        name: str,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        max_samples: int | None = None,
        shuffle_seed: int = 0,
        group_by_length: bool = True,
    ) -> None:
        super().__init__()
        self.name = name
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_seed = split_seed
        self.max_samples = max_samples
        self.shuffle_seed = shuffle_seed
        self.group_by_length = group_by_length
        self._split_lengths: dict[str, list[int]] = {}
        self._resumed_mid_epoch: tuple[int, int] | None = None
        self._data: LoadedData | None = None
        self._splits: dict[str, np.ndarray] = {}
        self._inputs_fn: Callable[[list[Any]], Any] | None = None
        self.normalization: tuple[list[float], list[float]] | None = None

    # ------------------------------------------------------------ what a source implements

    def load(self) -> LoadedData:
        raise NotImplementedError

    def transform(self, split: str) -> Callable | None:
        """Per-example transform for a split (image augmentation); none by default."""
        return None

    # ------------------------------------------------------------ facts for the model and tracking
    @property
    def data(self) -> LoadedData:
        if self._data is None:
            self.setup()
        assert self._data is not None
        return self._data

    @property
    def task(self) -> str:
        return self.data.task

    @property
    def num_classes(self) -> int | None:
        return len(self.data.class_names) if self.task == CLASSIFICATION else None

    @property
    def class_names(self) -> list[str]:
        return self.data.class_names

    @property
    def split_sizes(self) -> dict[str, int]:
        self.data  # noqa: B018 - loads and splits on first use
        return {split: len(indices) for split, indices in self._splits.items()}

    @property
    def fingerprint(self) -> str:
        """sha256 of the loaded content and of the split recipe: equal fingerprints, equal data."""
        recipe = f"{self.data.content_hash}|{self.split_seed}|{self.val_fraction}|{self.test_fraction}|{self.max_samples}"
        return hashlib.sha256(recipe.encode()).hexdigest()

    def bind_inputs(
        self,
        inputs_fn: Callable[[list[Any]], Any],
        modality: str,
        normalization: tuple[list[float], list[float]] | None = None,
    ) -> None:
        """Use the backbone's preprocessing (tokenizer, image stacking, mean/std) to build batches."""
        if modality != self.modality:
            raise FtlabError(
                f"data={self.name} yields {self.modality} but the backbone reads {modality}: pick a matching model"
            )
        self._inputs_fn = inputs_fn
        self.normalization = normalization

    # ------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str | None = None) -> None:
        if self._data is not None:
            return
        data = self.load()
        if len(data.targets) == 0:
            raise FtlabError(f"data={self.name} loaded no examples")
        if data.task == CLASSIFICATION and len(data.class_names) < 2:
            raise FtlabError(
                f"data={self.name}: found {len(data.class_names)} class "
                f"({', '.join(data.class_names)}); classification needs at least two"
            )
        self._data = data
        self._splits = data.fixed_splits or self._random_splits(len(data.targets))
        for split in ("train", "val", "test"):
            if len(self._splits.get(split, ())) == 0:
                raise FtlabError(
                    f"data={self.name}: the {split} split is empty; use more data or larger data.*_fraction"
                )

    def _random_splits(self, count: int) -> dict[str, np.ndarray]:
        order = np.random.default_rng(self.split_seed).permutation(count)
        if self.max_samples is not None:
            order = order[: self.max_samples]
        n_test = int(round(len(order) * self.test_fraction))
        n_val = int(round(len(order) * self.val_fraction))
        return {
            "test": order[:n_test],
            "val": order[n_test : n_test + n_val],
            "train": order[n_test + n_val :],
        }

    def dataset(self, split: str) -> Dataset:
        indices = self._splits[split]
        examples = [self.data.examples[i] for i in indices]
        return _Examples(examples, self.data.targets[indices], self.transform(split))

    def model_inputs(self, split: str) -> tuple[list[Any], np.ndarray]:
        """A split as the logged model takes it: strings, or image tensors before normalization."""
        indices = self._splits[split]
        return [self.raw_input(self.data.examples[i]) for i in indices], self.data.targets[indices]

    def raw_input(self, example: Any) -> Any:
        return example

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if self._inputs_fn is None:
            raise RuntimeError("bind_inputs must be called with the backbone's preprocessing first")
        target_dtype = torch.long if self.task == CLASSIFICATION else torch.float32
        dataset = self.dataset(split)
        # Loaders never touch the global RNG: a resumed run then matches an uninterrupted one.
        generator = torch.Generator().manual_seed(self.shuffle_seed)
        sampler = None
        lengths = self._lengths(split)
        if shuffle:
            resume_at = None
            world = self.trainer.world_size if self.trainer is not None else 1
            if self._resumed_mid_epoch is not None:
                epoch, batches = self._resumed_mid_epoch
                # Under DDP the order is dealt out to the ranks: each rank's batches done
                # covered `world` times as many of its examples.
                resume_at = (epoch, batches * self.batch_size * world)
            sampler = EpochShuffle(
                len(dataset), self.shuffle_seed, generator, resume_at,
                lengths=lengths, batch_size=self.batch_size, keep_length=world > 1,
            )  # fmt: skip
        elif lengths is not None:
            # Order never changes an evaluation's result; longest first pads each batch least.
            sampler = sorted(range(len(dataset)), key=lambda i: -lengths[i])
        return DataLoader(
            dataset,
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            sampler=sampler,
            generator=generator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=Collate(self._inputs_fn, target_dtype),
        )

    def _lengths(self, split: str) -> list[int] | None:
        """Tokens per example of a split, when batches are grouped by length (text backbones)."""
        measure = getattr(self._inputs_fn, "lengths", None)
        if not self.group_by_length or measure is None:
            return None
        if split not in self._split_lengths:
            examples = [self.data.examples[i] for i in self._splits[split]]
            self._split_lengths[split] = list(measure(examples))
        return self._split_lengths[split]

    # ------------------------------------------------------------ position in the epoch, in checkpoints
    def state_dict(self) -> dict[str, int]:
        """Where training stands in the current epoch, so a mid-epoch resume continues there."""
        trainer = self.trainer
        if trainer is None:
            return {}
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        if done >= trainer.num_training_batches:  # epoch finished: the next one starts fresh
            return {}
        return {"epoch": trainer.current_epoch, "batches_done": done}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        if state_dict:
            self._resumed_mid_epoch = (state_dict["epoch"], state_dict["batches_done"])

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def hash_bytes(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()
