"""Lightning callbacks ftlab adds to every run: checkpoints for resume, throughput."""

from ftlab.names import LAST_CHECKPOINT

__all__ = ["LAST_CHECKPOINT"]
