"""Can this version of ftlab run a logged config? A config written by a newer ftlab may carry keys
this version would silently ignore, or name config options it does not have."""

from __future__ import annotations

from typing import Any

from ftlab import __version__
from ftlab.errors import FtlabError
from ftlab.names import TRIAL_KEY

# Keys the run's own launch added; they are not part of the experiment.
_LAUNCH_KEYS = (TRIAL_KEY,)


def check_known_keys(config: dict[str, Any], overrides: list[str], made_by: str) -> None:
    """Compose what this ftlab builds from the run's overrides and compare the key sets: a logged
    key this version would not compose is an error naming it."""
    from hydra.errors import HydraException

    from ftlab.config.overrides import replayable
    from ftlab.config.setup import compose_train

    replayed = [o for o in replayable(overrides) if not o.lstrip("+~").startswith(_LAUNCH_KEYS)]
    try:
        current = compose_train(replayed)
    except HydraException as err:
        first = str(err).strip().splitlines()[0]
        raise FtlabError(
            f"the run's overrides do not compose with ftlab {__version__} (run made by ftlab "
            f"{made_by}): {first}"
        ) from None
    from omegaconf import OmegaConf

    known = set(_key_paths(OmegaConf.to_container(current, resolve=False)))
    unknown = sorted(
        key for key in _key_paths(config) if key not in known and not key.startswith(_LAUNCH_KEYS)
    )
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise FtlabError(
            f"config key {unknown[0]}{more} is unknown to ftlab {__version__} (the run was made "
            f"by ftlab {made_by}); upgrade ftlab to run it again"
        )


def _key_paths(tree: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf and every dict key ({"a": {"b": 1}} -> ["a", "a.b"])."""
    if not isinstance(tree, dict):
        return []
    paths = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        paths.append(path)
        paths.extend(_key_paths(value, f"{path}."))
    return paths
