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

    def __init__(
        self,
        size: int,
        seed: int,
        loader_generator: torch.Generator,
        resume_at: tuple[int, int] | None = None,
    ) -> None:
        self.size, self.seed = size, seed
        self.loader_generator = loader_generator
        # (epoch, examples already trained in it): a run resumed mid-epoch continues that
        # epoch's order where it stopped instead of starting it over.
        self.resume_at = resume_at
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.loader_generator.manual_seed(epoch_seed(self.seed, epoch) + 1)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        order = torch.randperm(self.size, generator=generator).tolist()
        if self.resume_at is not None and self.resume_at[0] == self.epoch:
            order = order[self.resume_at[1] :]
        return iter(order)

    def __len__(self) -> int:
        return self.size
