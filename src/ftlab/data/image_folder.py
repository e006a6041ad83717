"""A user's own images in class folders (torchvision ImageFolder layout).

Either `root/train`, `root/val`, `root/test` each hold one folder per class (missing val/test are
split off train), or `root` itself holds the class folders and is split by fractions."""

from __future__ import annotations

import hashlib
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ftlab.data.base import LoadedData, SplitDataModule
from ftlab.errors import FtlabError
from ftlab.names import CLASSIFICATION

_SPLITS = ("train", "val", "test")


class ImageFolderDataModule(SplitDataModule):
    modality = "image"

    def __init__(
        self,
        root: str,
        image_size: int = 224,
        resize_size: int | None = None,
        hflip: bool = True,
        normalization: str = "backbone",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        self.image_size = image_size
        self.resize_size = resize_size or int(round(image_size * 8 / 7))
        self.hflip = hflip
        self.use_backbone_normalization = normalization == "backbone"

    def load(self) -> LoadedData:
        from torchvision.datasets import ImageFolder

        if not self.root.is_dir():
            raise FtlabError(f"data.root: no such directory {self.root}")
        split_dirs = {s: self.root / s for s in _SPLITS if (self.root / s).is_dir()}
        sources = split_dirs if "train" in split_dirs else {"all": self.root}
        try:
            folders = {split: ImageFolder(str(path)) for split, path in sources.items()}
        except (FileNotFoundError, RuntimeError) as err:
            raise FtlabError(f"data.root {self.root}: {err}") from None
        class_names = next(iter(folders.values())).classes
        if len(class_names) < 2:
            raise FtlabError(
                f"data.root: {self.root} has {len(class_names)} class folder "
                f"({', '.join(class_names)}); classification needs at least two"
            )
        paths, targets, owner, digest = self._readable_samples(folders, class_names)
        fixed = self._fixed_splits(np.asarray(owner)) if "all" not in sources else None
        return LoadedData(
            paths,
            np.asarray(targets, dtype=np.int64),
            CLASSIFICATION,
            digest.hexdigest(),
            class_names,
            fixed,
        )

    def _readable_samples(
        self, folders: dict[str, Any], class_names: list[str]
    ) -> tuple[list[str], list[int], list[str], Any]:
        """Every image that decodes (with its class and split) and the hash of their bytes;
        files that do not decode are skipped and counted on stderr."""
        paths, targets, owner, unreadable = [], [], [], []
        digest = hashlib.sha256()
        for split, folder in folders.items():
            if folder.classes != class_names:
                raise FtlabError(
                    f"data.root: {self.root / split} has classes {folder.classes}, expected {class_names}"
                )
            for path, target in folder.samples:
                content = Path(path).read_bytes()
                if not _decodes(content):
                    unreadable.append(path)
                    continue
                digest.update(str(Path(path).relative_to(self.root)).encode())
                digest.update(content)
                paths.append(path)
                targets.append(target)
                owner.append(split)
        if unreadable:
            shown = ", ".join(str(Path(p).relative_to(self.root)) for p in unreadable[:3])
            more = f" (+{len(unreadable) - 3} more)" if len(unreadable) > 3 else ""
            print(
                f"warning: data.root: skipped {len(unreadable)} unreadable images: {shown}{more}",
                file=sys.stderr,
            )
        return paths, targets, owner, digest

    def _fixed_splits(self, owner: np.ndarray) -> dict[str, np.ndarray]:
        """Use the given folders; split what is missing off train by the configured fractions."""
        splits = {split: np.flatnonzero(owner == split) for split in _SPLITS}
        rng = np.random.default_rng(self.split_seed)
        train = rng.permutation(splits["train"])
        for split, fraction in (("val", self.val_fraction), ("test", self.test_fraction)):
            if len(splits[split]) == 0:
                take = max(1, int(round(len(train) * fraction)))
                splits[split], train = train[:take], train[take:]
        splits["train"] = train
        return splits

    def raw_input(self, example: str):
        """The file as the evaluation transform sees it, without normalization (C, H, W in [0, 1])."""
        from torchvision import transforms as T

        resize = T.Compose(
            [T.Resize(self.resize_size), T.CenterCrop(self.image_size), T.ToTensor()]
        )
        return resize(_load_rgb(example))

    def transform(self, split: str) -> Callable:
        from torchvision import transforms as T

        steps: list[Callable] = [T.Resize(self.resize_size)]
        if split == "train":
            steps += [T.RandomResizedCrop(self.image_size, scale=(0.5, 1.0))]
            steps += [T.RandomHorizontalFlip()] if self.hflip else []
        else:
            steps += [T.CenterCrop(self.image_size)]
        steps += [T.ToTensor()]
        if self.use_backbone_normalization and self.normalization is not None:
            steps += [T.Normalize(*self.normalization)]
        return T.Compose([_load_rgb, *steps])


def _load_rgb(path: str):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError) as err:  # changed since it was checked
        raise FtlabError(f"data.root: cannot read image {path} ({err})") from None


def _decodes(content: bytes) -> bool:
    """Whether the bytes decode as an image. JPEGs decode at 1/8 scale (still reading every byte,
    so a truncated file fails) to keep the check cheap beside the hashing that reads them anyway."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(content)) as image:
            image.draft("RGB", (32, 32))
            image.load()
        return True
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return False
