"""Data modules on the real shipped data: sizes, splits, fingerprints, targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ftlab.data.csv import CsvDataModule
from ftlab.data.digits import DigitsDataModule
from ftlab.data.image_folder import ImageFolderDataModule
from ftlab.data.vader import VaderDataModule
from ftlab.errors import FtlabError


def test_vader_regression_is_the_whole_lexicon_without_duplicates() -> None:
    data = VaderDataModule(name="vader", task="regression")
    data.setup()
    assert sum(data.split_sizes.values()) == 7506 == len(set(data.data.examples))
    merged = data.data.targets[data.data.examples.index("lol")]
    assert merged == pytest.approx((2.9 + 1.8) / 2)
    assert data.data.targets.min() == pytest.approx(
        -3.9
    ) and data.data.targets.max() == pytest.approx(3.4)
    assert data.task == "regression" and data.num_classes is None


def test_vader_polarity_drops_the_neutral_band() -> None:
    narrow = VaderDataModule(name="vader", task="polarity", neutral_band=0.5)
    wide = VaderDataModule(name="vader", task="polarity", neutral_band=2.0)
    narrow.setup(), wide.setup()
    assert sum(wide.split_sizes.values()) < sum(narrow.split_sizes.values()) < 7519
    assert set(np.unique(narrow.data.targets)) == {0, 1}
    assert narrow.class_names == ["negative", "positive"]
    assert narrow.fingerprint != wide.fingerprint


def test_text_batches_are_grouped_by_length_and_evaluation_sees_every_example_once() -> None:
    from ftlab.models.backbones.hf import TextPreprocessor, _tokenizer, resolve_model_source

    tokenizer = _tokenizer(resolve_model_source("sentence-transformers/all-MiniLM-L6-v2"))

    def padded_tokens(grouped: bool) -> dict[str, int]:
        data = VaderDataModule(
            name="vader", max_samples=600, batch_size=16, group_by_length=grouped
        )
        data.setup()
        data.bind_inputs(TextPreprocessor(tokenizer, 32), modality="text")
        tokens = {}
        for split, loader in (("train", data.train_dataloader()), ("val", data.val_dataloader())):
            order = [loader.dataset[i][0] for i in loader.sampler]
            assert sorted(order) == sorted(data.model_inputs(split)[0])  # each example once
            tokens[split] = sum(inputs["input_ids"].numel() for inputs, _ in loader)
        return tokens

    grouped, ungrouped = padded_tokens(True), padded_tokens(False)
    assert VaderDataModule(name="vader").group_by_length  # on by default
    assert grouped["train"] < 0.8 * ungrouped["train"]
    assert grouped["val"] < 0.8 * ungrouped["val"]


def test_splits_are_deterministic_from_the_split_seed() -> None:
    first, again, other = (VaderDataModule(name="vader", split_seed=s) for s in (1, 1, 2))
    for data in (first, again, other):
        data.setup()
    assert np.array_equal(first._splits["test"], again._splits["test"])
    assert not np.array_equal(first._splits["test"], other._splits["test"])
    assert first.fingerprint == again.fingerprint != other.fingerprint
    assert set(first._splits["train"]).isdisjoint(first._splits["val"])


def test_digits_class_subset_is_relabelled_and_labels_thinned() -> None:
    data = DigitsDataModule(name="digits", classes=[5, 6, 7, 8, 9], label_fraction=0.1)
    data.setup()
    assert data.class_names == ["5", "6", "7", "8", "9"]
    assert set(np.unique(data.data.targets)) == {0, 1, 2, 3, 4}
    full = DigitsDataModule(name="digits", classes=[5, 6, 7, 8, 9])
    full.setup()
    assert data.split_sizes["train"] == round(full.split_sizes["train"] * 0.1)
    assert data.split_sizes["test"] == full.split_sizes["test"]


def test_image_folder_split_by_fractions(digits_image_folder: Path) -> None:
    data = ImageFolderDataModule(name="images", root=str(digits_image_folder), image_size=16)
    data.setup()
    assert data.class_names == ["0", "1", "2"] and sum(data.split_sizes.values()) == 60
    image, _ = data.dataset("val")[0]
    assert tuple(image.shape) == (3, 16, 16)


def test_image_folder_with_split_folders(tmp_path: Path, digits_image_folder: Path) -> None:
    for split in ("train", "test"):
        for digit in ("0", "1", "2"):
            (tmp_path / split / digit).mkdir(parents=True)
            for png in sorted((digits_image_folder / digit).glob("*.png"))[
                : 12 if split == "train" else 4
            ]:
                (tmp_path / split / digit / png.name).write_bytes(png.read_bytes())
    data = ImageFolderDataModule(name="images", root=str(tmp_path), val_fraction=0.25)
    data.setup()
    assert data.split_sizes == {"train": 27, "val": 9, "test": 12}


def test_csv_regression_and_classification(vader_csv: Path) -> None:
    values = CsvDataModule(
        name="csv",
        path=str(vader_csv),
        text_column="word",
        label_column="valence",
        task="regression",
    )
    labels = CsvDataModule(
        name="csv", path=str(vader_csv), text_column="word", label_column="label"
    )
    values.setup(), labels.setup()
    assert values.task == "regression" and values.data.targets.dtype == np.float32
    assert labels.class_names == ["negative", "positive"]
    with pytest.raises(FtlabError, match="data.text_column: column 'text' not in"):
        CsvDataModule(name="csv", path=str(vader_csv)).setup()
