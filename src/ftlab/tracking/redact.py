"""Keep secrets out of the tracking store: params, config files and overrides are redacted
before they are logged."""

from __future__ import annotations

import os
import re
from typing import Any

REDACTED = "***redacted***"
_SECRET_NAME = re.compile(
    r"(^|[_.-])(token|secret|passw(or)?d|api[_-]?key|access[_-]?key|private[_-]?key|credentials?|auth)($|[_.-])",
    re.IGNORECASE,
)


def looks_secret(name: str) -> bool:
    """True for keys or variable names such as hf_token, db.password, OPENAI_API_KEY."""
    return bool(_SECRET_NAME.search(name.rsplit(".", 1)[-1]))


def secret_values(environ: dict[str, str] | None = None) -> set[str]:
    """Values of environment variables whose names look secret (long enough to be real)."""
    environ = os.environ if environ is None else environ
    return {value for name, value in environ.items() if looks_secret(name) and len(value) >= 8}


def redact_params(params: dict[str, Any], secrets: set[str] | None = None) -> dict[str, Any]:
    secrets = secret_values() if secrets is None else secrets
    return {
        key: REDACTED if looks_secret(key) else redact_text(value, secrets)
        for key, value in params.items()
    }


def redact_text(value: Any, secrets: set[str]) -> Any:
    """Replace every secret value inside `value` (only strings change)."""
    if not isinstance(value, str):
        return value
    for secret in secrets:
        value = value.replace(secret, REDACTED)
    return value


def redact_tree(tree: Any, secrets: set[str] | None = None) -> Any:
    """A copy of a nested dict/list config with secret keys and secret values redacted."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(tree, dict):
        return {
            k: REDACTED if looks_secret(str(k)) and tree[k] is not None else redact_tree(v, secrets)
            for k, v in tree.items()
        }
    if isinstance(tree, list):
        return [redact_tree(v, secrets) for v in tree]
    return redact_text(tree, secrets)


def redact_override(override: str, secrets: set[str]) -> str:
    """`key=value` command-line overrides: secret keys lose their value."""
    key, sep, value = override.partition("=")
    if sep and looks_secret(key.lstrip("+~")):
        return f"{key}={REDACTED}"
    return redact_text(override, secrets)
