"""Keep secrets out of everything ftlab logs, writes or prints.

Three kinds of secret are recognised: values under keys that look secret (`hub.token`,
`db.password`), passwords inside URLs (`postgresql://user:PASSWORD@host/db`), and the values of
environment variables whose names look secret (`AWS_SECRET_ACCESS_KEY`) wherever they appear.
Override strings (`hub.token=abc`, Hydra's comma-joined `override_dirname`) are redacted by key.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

REDACTED = "***redacted***"
_SECRET_NAME = re.compile(
    r"(^|[_.-])(tokens?|secrets?|passw(or)?ds?|pwd|pass(phrase)?|api[_-]?key|access[_-]?key"
    r"|private[_-]?key|signing[_-]?key|credentials?|auth|jwt|bearer)($|[_.-])",
    re.IGNORECASE,
)
_SHELL_DIRECTORIES = {"PWD", "OLDPWD"}  # the shell's folders, not passwords (db.pwd is one)
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")  # mlflowPassword -> mlflow_Password
# scheme://user:PASSWORD@host  (the user name stays: it says whose account it is); a raw "@" in
# the password belongs to it when another "@" follows before the host, as URL parsers read it
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*):((?:[^@\s/]|@(?=[^\s/]*@))+)@")
# ?password=...&sslpassword=...&api_key=...&X-Amz-Signature=... in query strings (names ending so)
_QUERY_SECRET = re.compile(
    r"([?&;][\w.\-]*?(?:password|passwd|pwd|pass|token|secret|key|signature|sig)=)[^&\s;#]+",
    re.IGNORECASE,
)
# key=value pairs inside a string: overrides, Hydra's override_dirname ("a=1,hub.token=x")
_ASSIGNMENT = re.compile(r"([+~]?[A-Za-z_][\w.\-/]*)=('[^']*'|\"[^\"]*\"|[^,\s&]*)")
_MIN_SECRET_LENGTH = 8  # shorter environment values ("1", "true") would redact everything


def looks_secret(name: str) -> bool:
    """True for keys or variable names such as hf_token, db.password, OPENAI_API_KEY."""
    last = str(name).rsplit(".", 1)[-1]
    if last in _SHELL_DIRECTORIES:
        return False
    return bool(_SECRET_NAME.search(_CAMEL_BOUNDARY.sub("_", last)))


def secret_values(environ: dict[str, str] | None = None) -> set[str]:
    """Values of environment variables whose names look secret (long enough to be real)."""
    environ = os.environ if environ is None else environ
    return {
        value
        for name, value in environ.items()
        if looks_secret(name) and len(value) >= _MIN_SECRET_LENGTH
    }


def redact_text(value: Any, secrets: set[str] | None = None) -> Any:
    """A string with URL passwords, secret assignments and secret values replaced; other types
    are returned as they are."""
    if not isinstance(value, str):
        return value
    secrets = secret_values() if secrets is None else secrets
    value = _URL_PASSWORD.sub(rf"\1:{REDACTED}@", value)
    value = _QUERY_SECRET.sub(rf"\1{REDACTED}", value)
    value = _ASSIGNMENT.sub(_redact_assignment, value)
    for secret in sorted(secrets, key=len, reverse=True):
        value = value.replace(secret, REDACTED)
    return value


def _redact_assignment(match: re.Match[str]) -> str:
    key, value = match.group(1), match.group(2)
    if value and looks_secret(key.lstrip("+~")):
        return f"{key}={REDACTED}"
    return match.group(0)


def redact_params(params: dict[str, Any], secrets: set[str] | None = None) -> dict[str, Any]:
    secrets = secret_values() if secrets is None else secrets
    return {
        key: REDACTED if looks_secret(key) and value is not None else redact_text(value, secrets)
        for key, value in params.items()
    }


def redact_tree(tree: Any, secrets: set[str] | None = None) -> Any:
    """A copy of a nested dict/list config with secret keys and secret values redacted."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(tree, dict):
        return {
            k: REDACTED if looks_secret(str(k)) and v is not None else redact_tree(v, secrets)
            for k, v in tree.items()
        }
    if isinstance(tree, list):
        return [redact_tree(v, secrets) for v in tree]
    return redact_text(tree, secrets)


def redact_override(override: str, secrets: set[str] | None = None) -> str:
    """A `key=value` command-line override: secret keys lose their value, URLs their password."""
    return redact_text(override, secrets)


def secret_in(value: Any, secrets: set[str] | None = None) -> bool:
    """Whether a value carries a secret (a URL password or a secret environment value)."""
    return isinstance(value, str) and redact_text(value, secrets) != value


def redact_yaml_files(folder: str | Path) -> None:
    """Rewrite the YAML files in `folder` (Hydra's `.hydra/`, a sweep's `multirun.yaml`) with
    their secrets redacted; files without secrets stay untouched."""
    import yaml

    secrets = secret_values()
    folder = Path(folder)
    paths = [folder] if folder.is_file() else sorted(folder.glob("*.yaml"))
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x the pure-Python one
    for path in paths:
        try:
            content = yaml.load(path.read_text(), Loader=loader)
        except (OSError, yaml.YAMLError):
            continue
        redacted = redact_tree(content, secrets)
        if redacted != content:
            path.write_text(yaml.safe_dump(redacted, sort_keys=False))
