"""Checks a composed config before anything is built, so bad input fails fast and leaves no run."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ftlab.config.schemas import SCHEMAS
from ftlab.errors import FtlabError

_SCHEMA_TYPES = {schema for group in SCHEMAS.values() for schema in group.values()}


def check_config(cfg: DictConfig) -> None:
    """Raise FtlabError naming the first missing or invalid key.

    Every typed group is converted to its dataclass, which runs its `__post_init__` value checks
    (lr > 0, batch_size > 0, ...); the message is prefixed with the group so it names the full key.
    """
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise FtlabError(
            f"{missing[0]} is required: set it on the command line, e.g. {missing[0]}=VALUE"
        )
    for group in SCHEMAS:
        node = cfg.get(group)
        if not isinstance(node, DictConfig) or OmegaConf.get_type(node) not in _SCHEMA_TYPES:
            continue
        try:
            OmegaConf.to_object(node)
        except (ValueError, OmegaConfBaseException) as err:
            raise FtlabError(f"{group}.{_first_line(err)}") from None


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0]
