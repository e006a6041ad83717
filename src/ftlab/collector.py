"""When Python's cyclic garbage collector runs in ftlab's processes.

Full collections walk every object alive, and importing torch, Lightning and their dependencies
adds about 800k objects that live as long as the process (one full collection over them: 0.6 s).
So the collector stays off while a process imports and builds what it needs, and skips those
objects while it trains; a process that runs trial after trial skips its imports for good."""

from __future__ import annotations

import contextlib
import gc
import importlib
import sys
from collections.abc import Iterator

_frozen_for_life = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block: measured on the digits CNN, 9 full
    collections during a run's start-up took 2.3 s and found next to nothing, and a bare
    `import torch, lightning.pytorch, torchmetrics` takes 1.8 s longer with the collector on.
    The caller's setting comes back at the end, however the block ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        (gc.enable if enabled else gc.disable)()


@contextlib.contextmanager
def collector_skips_what_exists() -> Iterator[None]:
    """Collect garbage inside the block, but leave every object alive at its start alone
    (frozen): each full collection would walk them all, 0.3-0.6 s after the imports. Unfrozen
    afterwards, so whatever became garbage meanwhile is still collected. In a process frozen for
    life the imports are skipped already and nothing is frozen here: unfreezing would bring them
    back into every full collection between and during the trials that follow."""
    if _frozen_for_life:
        gc.enable()
        yield
        return
    gc.freeze()
    gc.enable()
    try:
        yield
    finally:
        gc.unfreeze()


def import_for_life(module: str) -> None:
    """Import `module` with the collector paused, then leave everything alive out of every later
    collection for as long as the process lives: for a process that runs trial after trial (a
    sweep's own, a sweep worker, a launcher's worker). Frozen before the collector is back on,
    whose first collection would otherwise walk everything the import made (0.5 s for Lightning):
    it all sits in the youngest generation. Unfrozen, those objects came back into a full
    collection every few trials, 0.4-0.6 s each. Nothing happens when `module` is loaded already:
    freezing then could catch a finished trial's garbage, which would never be freed. The garbage
    the import itself left (about 13k objects for Lightning) stays frozen too."""
    global _frozen_for_life
    if module in sys.modules:
        return
    with collector_paused():
        importlib.import_module(module)
        gc.freeze()
    _frozen_for_life = True


def import_for_trials() -> None:
    """The bulk of what every trial imports, loaded once in a process that runs trials or
    multirun jobs (a sweep's own process before its config check, a sweep worker while the sweep
    opens its study, a launcher's worker at its first job) and frozen for life."""
    import_for_life("lightning.pytorch")  # and torch with it
