"""Everything Hydra must know before it composes ftlab's configs."""

from __future__ import annotations

from ftlab.config.resolvers import register_resolvers
from ftlab.config.schemas import register_schemas


def prepare_hydra() -> None:
    """Register the typed schemas and resolvers; safe to call more than once."""
    register_schemas()
    register_resolvers()
