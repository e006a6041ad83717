"""Which callables a config from the tracking store may name.

A config's `_target_` is imported and called: running a config pulled from a shared server runs
whatever code it names. `ftlab reproduce` and `ftlab resume` accept only targets under trusted
packages unless the user says `--trust`.
"""

from __future__ import annotations

from typing import Any

from ftlab.errors import FtlabError

TRUSTED_PACKAGES = (
    "ftlab",
    "torch",
    "lightning",
    "torchmetrics",
    "transformers",
    "timm",
    "torchvision",
    "peft",
    "optuna",
)


def targets(tree: Any, path: str = "") -> list[tuple[str, str]]:
    """Every (config key, `_target_` value) in a config tree, lists included."""
    found: list[tuple[str, str]] = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            here = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                found.append((here, str(value)))
            else:
                found.extend(targets(value, here))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            found.extend(targets(value, f"{path}[{index}]"))
    return found


def check_targets(config: dict[str, Any], extra_trusted: list[str] | tuple[str, ...] = ()) -> None:
    """Raise FtlabError naming the first `_target_` outside the trusted packages (or modules:
    `--allow mylab.models` trusts that module and everything below it)."""
    trusted = (*TRUSTED_PACKAGES, *extra_trusted)
    for key, target in targets(config):
        if not any(target == prefix or target.startswith(prefix + ".") for prefix in trusted):
            package = target.split(".", 1)[0]
            raise FtlabError(
                f"{key}: '{target}' is not in a trusted package ({', '.join(trusted)}); "
                "refusing to run it. Check the config, then pass --trust (or --allow "
                f"{package}) to run it anyway"
            )
