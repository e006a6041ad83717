"""Data order as a pure function of (seed, epoch), so a resumed run sees the batches an
uninterrupted one would.

torch's default shuffling draws its seed from the global RNG each time a loader is iterated, so the
order of epoch k depends on everything that used the RNG before it; after a resume that history is
gone. Here every epoch's permutation comes from its own generator, and the global RNG is left to
the model (dropout), whose state the last checkpoint carries.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


def epoch_seed(seed: int, epoch: int) -> int:
    """A distinct, reproducible 63-bit seed per (seed, epoch)."""
    return (seed * 1_000_003 + epoch * 7_919 + 17) % (2**63)


class EpochShuffle(Sampler[int]):
    """Random order, fixed by `seed` and the epoch Lightning announces through `set_epoch`.

    It also re-seeds the loader's `generator` per epoch: DataLoader draws the workers' base seed
    from it, which would otherwise come from (and advance) the global RNG.
    """

    def __init__(self, size: int, seed: int, loader_generator: torch.Generator) -> None:
        self.size, self.seed = size, seed
        self.loader_generator = loader_generator
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.loader_generator.manual_seed(epoch_seed(self.seed, epoch) + 1)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size
