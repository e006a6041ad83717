"""Command-line overrides (`key=value`) as data: parsed with Hydra's own grammar, never run."""

from __future__ import annotations

from typing import Any

from ftlab.errors import FtlabError


def quote_override_value(value: str) -> str:
    """`value` quoted for Hydra's grammar, so characters like `,` `=` `$` stay literal."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def parse(arguments: list[str]) -> list[Any]:
    """Hydra's parsed overrides; FtlabError (naming the argument) for one that does not parse."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    parsed = []
    for argument in arguments:
        try:
            parsed.extend(parser.parse_overrides([argument]))
        except OverrideParseException as err:
            raise FtlabError(f"cannot parse '{argument}': {str(err).splitlines()[0]}") from None
    return parsed


def repeated_keys(arguments: list[str]) -> list[str]:
    """One line per key given more than once (`optimizer.lr=0.01 optimizer.lr=0.02`): Hydra keeps
    the last silently, so the user is told which value counts."""
    seen: dict[str, str] = {}
    lines = []
    for argument, override in zip(arguments, parse(arguments), strict=True):
        key = override.get_key_element().lstrip("+~")
        if key.startswith(("hydra.", "hydra/")):
            continue  # launchers (Lightning's DDP relaunch) append their own hydra.* settings
        if key in seen:
            lines.append(
                f"{key} is given twice on the command line ({seen[key]!r}, then {argument!r}); "
                "the last one counts"
            )
        seen[key] = argument
    return lines


def replayable(overrides: list[str]) -> list[str]:
    """The overrides of a logged run that may be composed again to learn its config's shape:
    group choices and plain values. Hydra settings (search paths, plugins) and interpolations
    are dropped: a store's overrides are data, never a second route to running something."""
    kept = []
    for argument in overrides:
        key = argument.split("=", 1)[0].lstrip("+~")
        if key.startswith(("hydra.", "hydra/")) or key == "hydra" or "${" in argument:
            continue
        kept.append(argument)
    return kept
