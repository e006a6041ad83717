"""What a config from a tracking store may ask ftlab to run.

A config's `_target_` is imported and called, its `${...}` interpolations are resolved, and its
keys reach constructors: running a config pulled from a shared server runs whatever it names.
`ftlab reproduce` and `ftlab resume` therefore check three things before anything is launched:

- every `_target_` resolves to the very object one of ftlab's own configs names (compared by
  identity, not by name: `torch.os.system` and `ftlab.config.locate.os.system` resolve to
  `os.system`, which no shipped config names), or to one the user allowed with `--allow`. Names
  are resolved through modules already imported (those of the shipped targets and of `--allow`),
  so a store cannot make ftlab import a module of its choice;
- no setting that turns a safety off (`weights_only: false`, `trust_remote_code: true`, ...);
- no interpolation that reads the environment (`${oc.env:AWS_SECRET_ACCESS_KEY}` would put the
  reproducing user's secret into run names on the shared server), unless the user names the
  variable with `--allow-env`.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from ftlab.errors import FtlabError

# Settings that load pickles or run code shipped with a model, and the only value a store may set.
SAFE_SETTINGS: dict[str, Any] = {
    "weights_only": True,
    "trust_remote_code": False,
    "allow_pickle": False,
    "pickle_module": None,
}
# Resolvers a stored config may use: Hydra's run facts, ftlab's, and OmegaConf's pure ones.
PURE_RESOLVERS = {
    "hydra",
    "now",
    "ftlab.cwd",
    "oc.select",
    "oc.deprecated",
    "oc.dict.keys",
    "oc.dict.values",
}


def targets(tree: Any, path: str = "") -> list[tuple[str, str]]:
    """Every (config key, `_target_` value) in a config tree, lists included."""
    return [
        (key, str(value))
        for key, value in _leaves(tree, path)
        if key.rsplit(".", 1)[-1] == "_target_"
    ]


def check_config_trust(
    config: dict[str, Any],
    allowed_targets: Iterable[str] = (),
    allowed_env: Iterable[str] = (),
) -> None:
    """Raise FtlabError naming the first key that would run code, load a pickle or read the
    environment. `allowed_targets` are modules or callables the user trusts (`--allow`)."""
    check_targets(config, allowed_targets)
    check_safe_settings(config)
    check_interpolations(config, allowed_env)
    check_written_folders(config)


# ------------------------------------------------------------------ targets
def check_targets(config: dict[str, Any], allowed: Iterable[str] = ()) -> None:
    allowed = tuple(allowed)
    for module in allowed:  # the user vouches for these: they may be imported
        _import_allowed(module)
    for key, target in targets(config):
        if target in shipped_targets():
            continue  # the very name a shipped config uses: the same object, no import needed
        trusted_ids = _shipped_target_ids()  # another name may still reach a shipped callable
        obj = resolve_loaded(target)
        if obj is not None and (id(obj) in trusted_ids or _allowed(target, obj, allowed)):
            continue
        what = "resolves to an object" if obj is not None else "names nothing"
        resolved = f" ({_qualified(obj)})" if obj is not None else ""
        raise FtlabError(
            f"{key}: '{target}' {what}{resolved} that no ftlab config uses; refusing to run it. "
            f"Check the config, then pass --allow {target} (or --trust) to run it anyway"
        )


def resolve_loaded(target: str) -> Any:
    """The object a dotted name reaches through modules already imported; None when it reaches
    nothing. Never imports: the longest loaded module prefix is taken, the rest are attributes."""
    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is None:
            continue
        obj: Any = module
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute, _MISSING)
            if obj is _MISSING:
                return None
        return obj
    return None


_MISSING = object()


def _allowed(target: str, obj: Any, allowed: tuple[str, ...]) -> bool:
    """`--allow mylab.models` trusts what is both named and defined under that module;
    `--allow mylab.models.Net` trusts exactly that callable."""
    home = getattr(obj, "__module__", None) or getattr(obj, "__name__", "")
    for entry in allowed:
        if target == entry:
            return True
        under = target.startswith(entry + ".")
        if under and (home == entry or str(home).startswith(entry + ".")):
            return True
    return False


def _import_allowed(entry: str) -> None:
    """Import the module an `--allow` entry names (or the module holding a named callable)."""
    parts = entry.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            importlib.import_module(".".join(parts[:cut]))
            return
        except ImportError:
            continue


@functools.lru_cache(maxsize=1)
def _shipped_target_ids() -> frozenset[int]:
    """Identities of every callable named by a YAML under conf/ or a schema default. Their
    modules are imported here (the names are ftlab's own, never a store's)."""
    ids = set()
    for target in sorted(shipped_targets()):
        _import_allowed(target)
        obj = resolve_loaded(target)
        if obj is not None:
            ids.add(id(obj))
    return frozenset(ids)


@functools.lru_cache(maxsize=1)
def shipped_targets() -> frozenset[str]:
    from dataclasses import fields

    from ftlab.config.locate import config_dir
    from ftlab.config.schemas import SCHEMAS

    found = set()
    for path in config_dir().rglob("*.yaml"):
        found.update(target for _, target in targets(yaml.safe_load(path.read_text()) or {}))
    for group in SCHEMAS.values():
        for schema in group.values():
            found.update(str(f.default) for f in fields(schema) if f.name == "_target_")
    return frozenset(found)


def _qualified(obj: Any) -> str:
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", type(obj).__name__)
    return f"{module}.{name}" if module else str(name)


# ------------------------------------------------------------------ settings
def check_safe_settings(tree: Any) -> None:
    """Refuse `weights_only: false`, `trust_remote_code: true` and the like anywhere in a tree."""
    for key, value in _leaves(tree):
        name = key.rsplit(".", 1)[-1]
        if name in SAFE_SETTINGS and value != SAFE_SETTINGS[name]:
            raise FtlabError(
                f"{key}: {value!r} turns off a safety check (loading pickles or running code that "
                f"ships with a model); a config from a store may only set {SAFE_SETTINGS[name]!r}"
            )


# ------------------------------------------------------------------ folders written
# Where a run writes: its own folder, and the folder relative paths start from, as shipped.
SHIPPED_PATHS = {"output_dir": "${hydra:runtime.output_dir}", "root_dir": "${ftlab.cwd:}"}
_OUTPUT_DIR = "${paths.output_dir}"


def check_written_folders(config: dict[str, Any]) -> None:
    """A config from a store writes only inside the new run's own folder: `paths` as shipped, and
    every `dirpath` under `${paths.output_dir}` (a checkpoint folder named by the store could
    overwrite another run's `best.ckpt`, or any file of that name, on the reproducing machine)."""
    paths = config.get("paths")
    if isinstance(paths, dict):
        for name, shipped in SHIPPED_PATHS.items():
            if name in paths and paths[name] != shipped:
                raise FtlabError(
                    f"paths.{name}: {paths[name]!r} moves where the run writes; a config from a "
                    f"store may only keep {shipped!r} (pass --trust if you trust its author)"
                )
    for key, value in _leaves(config):
        if key.rsplit(".", 1)[-1] != "dirpath":
            continue
        inside = isinstance(value, str) and value.startswith(f"{_OUTPUT_DIR}/")
        if not inside or ".." in Path(value).parts:
            raise FtlabError(
                f"{key}: {value!r} writes outside the run's own folder; a config from a store may "
                f"only write under {_OUTPUT_DIR} (pass --trust if you trust its author)"
            )


# ------------------------------------------------------------------ interpolations
def check_interpolations(tree: Any, allowed_env: Iterable[str] = ()) -> None:
    """Refuse resolvers other than the pure ones, and `oc.env` except for named variables.

    Strings are read with OmegaConf's own grammar, so a call nested in another's arguments, a
    resolver name or variable name built by an interpolation (`${${r}:X}`, `${oc.env:${v}}`) are
    seen as OmegaConf will resolve them. `oc.decode` and `oc.create` are not pure here: they turn
    a string, which interpolations can assemble piece by piece, into config that is resolved."""
    allowed_env = set(allowed_env)
    for key, value in _leaves(tree):
        if not isinstance(value, str) or "${" not in value:
            continue
        for resolver, variable in _resolver_calls(key, value):
            if resolver is None:
                raise FtlabError(
                    f"{key}: '{value}' builds a resolver's name from an interpolation; a config "
                    "from a store may name only pure resolvers, literally"
                )
            if resolver in PURE_RESOLVERS:
                continue
            if resolver == "oc.env" and variable in allowed_env:
                continue
            if resolver == "oc.env":
                named = variable or "(named by an interpolation)"
                raise FtlabError(
                    f"{key}: '{value}' reads the environment variable {named}; a config from a "
                    f"store may not (pass --allow-env {variable or 'NAME'} if you mean to share it)"
                )
            raise FtlabError(
                f"{key}: '{value}' calls the resolver '{resolver}'; a config from a store may use "
                "only Hydra's and OmegaConf's pure resolvers"
            )


def _resolver_calls(key: str, value: str) -> Iterator[tuple[str | None, str | None]]:
    """(resolver name, first argument) of every resolver call in `value`, nested ones included;
    the name is None when an interpolation builds it, the argument None unless it is a literal."""
    from omegaconf.errors import GrammarParseError
    from omegaconf.grammar.gen.OmegaConfGrammarParser import OmegaConfGrammarParser as Grammar
    from omegaconf.grammar_parser import parse

    try:
        tree = parse(value)
    except GrammarParseError as err:
        raise FtlabError(f"{key}: '{value}' is not a valid interpolation ({err})") from None
    for node in _parse_nodes(tree):
        if isinstance(node, Grammar.InterpolationResolverContext):
            name = node.resolverName()
            arguments = node.sequence()
            first = arguments.element()[0] if arguments is not None else None
            literal = first is not None and not any(
                isinstance(part, Grammar.InterpolationContext) for part in _parse_nodes(first)
            )
            yield (
                None if name.interpolation() else name.getText(),
                _unquoted(first.getText()) if literal else None,
            )


def _parse_nodes(node: Any) -> Iterator[Any]:
    """`node` and everything below it in an OmegaConf parse tree."""
    pending = [node]
    while pending:
        node = pending.pop()
        yield node
        pending.extend(node.getChildren() if hasattr(node, "getChildren") else ())


def _unquoted(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def guard_environment(allowed_env: Iterable[str]) -> None:
    """From here on, `${oc.env:NAME}` in this process reads only the variables the user named:
    behind `check_interpolations`, a config from a store gets no other route to the environment
    even through a form that check did not foresee."""
    from omegaconf import OmegaConf
    from omegaconf.resolvers import oc

    allowed = frozenset(allowed_env)

    def env(key: str, *default: Any) -> Any:
        if key not in allowed:
            raise FtlabError(
                f"${{oc.env:{key}}}: a config from a store may not read the environment "
                f"(pass --allow-env {key} if you mean to share it)"
            )
        return oc.env(key, *default)

    OmegaConf.register_new_resolver("oc.env", env, replace=True, use_cache=False)


def _leaves(tree: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) for every entry of a nested dict/list tree; containers included."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            here = f"{path}.{key}" if path else str(key)
            yield here, value
            yield from _leaves(value, here)
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            here = f"{path}[{index}]"
            yield here, value
            yield from _leaves(value, here)


def check_resolved_folders(resolved: dict[str, Any]) -> None:
    """After resolution, a config from a store still writes only inside its run's folder: an
    interpolation (`${paths.output_dir}/${x}` with x `../..`) or a checkpoint `filename` with a
    path in it (`../../other/best`, `/tmp/evil`) would otherwise lead the write elsewhere."""
    output_dir = Path(str(resolved["paths"]["output_dir"])).resolve()
    for key, value in _leaves(resolved):
        name = key.rsplit(".", 1)[-1]
        outside = (
            name == "dirpath"
            and value is not None
            and not Path(str(value)).resolve().is_relative_to(output_dir)
        ) or (
            name == "filename"
            and key.startswith("callbacks.")
            and isinstance(value, str)
            and (Path(value).is_absolute() or ".." in Path(value).parts)
        )
        if outside:
            raise FtlabError(
                f"{key}: {value!r} leads out of the run's folder {output_dir}; a config from a "
                "store may only write inside it (pass --trust if you trust its author)"
            )


def check_resolved_secrets(resolved: Any, allowed_env: Iterable[str] = ()) -> None:
    """After resolution, no value of a config from a store may carry a secret of this machine (a
    secret-looking environment variable's value), whatever route brought it there."""
    import os

    from ftlab.redact import secret_values

    exempt = {os.environ.get(name) for name in allowed_env}
    secrets = {value for value in secret_values() if value not in exempt}
    for key, value in _leaves(resolved):
        if isinstance(value, str) and any(secret in value for secret in secrets):
            raise FtlabError(
                f"{key}: its value carries the value of a secret environment variable of this "
                "machine; refusing to run a config from a store that would log it"
            )
