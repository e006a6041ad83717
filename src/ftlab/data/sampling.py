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

    With `lengths` (tokens per example) the order is grouped by length: the shuffled order is cut
    into chunks of `batch_size * GROUP_BATCHES` examples, each chunk sorted longest first and cut
    into batches, and the batches shuffled (the short last batch stays last, so DataLoader's cuts
    fall where the batches end). Batches then hold examples of similar length and pad less.
    """

    GROUP_BATCHES = 50

    def __init__(
        self,
        size: int,
        seed: int,
        loader_generator: torch.Generator,
        resume_at: tuple[int, int] | None = None,
        lengths: list[int] | None = None,
        batch_size: int = 1,
        keep_length: bool = False,
    ) -> None:
        self.size, self.seed = size, seed
        self.loader_generator = loader_generator
        # (epoch, examples already trained in it): a run resumed mid-epoch continues that
        # epoch's order where it stopped instead of starting it over.
        self.resume_at = resume_at
        self.lengths, self.batch_size = lengths, max(1, batch_size)
        # Under DDP, Lightning's sampler wrapper deals this order out to the ranks by position and
        # expects it as long as len(self): the examples already trained move to the end instead of
        # going, and the epoch ends (by its batch count) before they come up, except to fill up a
        # short last batch.
        self.keep_length = keep_length
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.loader_generator.manual_seed(epoch_seed(self.seed, epoch) + 1)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        order = torch.randperm(self.size, generator=generator).tolist()
        if self.lengths is not None:
            order = self._grouped(order, generator)
        if self.resume_at is not None and self.resume_at[0] == self.epoch:
            done = self.resume_at[1]
            order = order[done:] + (order[:done] if self.keep_length else [])
        return iter(order)

    def _grouped(self, order: list[int], generator: torch.Generator) -> list[int]:
        chunk = self.batch_size * self.GROUP_BATCHES
        batches = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start : start + chunk], key=lambda i: -self.lengths[i])
            batches += [part[j : j + self.batch_size] for j in range(0, len(part), self.batch_size)]
        last = batches.pop() if len(batches[-1]) < self.batch_size else None
        shuffled = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return [i for batch in shuffled + ([last] if last else []) for i in batch]

    def __len__(self) -> int:
        return self.size
