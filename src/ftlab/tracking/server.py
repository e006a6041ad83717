"""`ftlab server`: a team's MLflow tracking server, on MLflow's own server.

PostgreSQL holds runs and users (`--backend-store-uri`), the server proxies artifacts into a folder
or bucket of its own (`--artifacts-destination`, so clients need no storage credentials), and
MLflow's basic-auth app asks every client for a login. It binds to 127.0.0.1 unless `--host`
names the team's address. The first start creates the admin user with the password in
`MLFLOW_AUTH_ADMIN_PASSWORD`.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from ftlab.errors import FtlabError
from ftlab.redact import redact_text

AUTH_INI = """[mlflow]
default_permission = {default_permission}
database_uri = {database_uri}
admin_username = {admin_username}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
grant_default_workspace_access = false
"""


def server_command(
    backend_store_uri: str, artifacts_destination: str, host: str, port: int, auth: bool
) -> list[str]:
    command = [sys.executable, "-m", "mlflow", "server"]
    command += ["--backend-store-uri", backend_store_uri]
    command += ["--artifacts-destination", artifacts_destination, "--serve-artifacts"]
    command += ["--host", host, "--port", str(port), "--workers", "1"]
    if auth:
        command += ["--app-name", "basic-auth"]
    return command


def serve_team(
    backend_store_uri: str | None,
    artifacts_destination: str,
    host: str,
    port: int,
    auth: bool,
    default_permission: str,
) -> int:
    from ftlab.tracking.ui import run_server

    store = backend_store_uri or os.environ.get("FTLAB_SERVER_DB")
    if not store:
        raise FtlabError(
            "--backend-store-uri: give the team's database (postgresql://USER:PASSWORD@HOST/DB), "
            "or set FTLAB_SERVER_DB"
        )
    env = dict(os.environ)
    if auth:
        import importlib.util

        if importlib.util.find_spec("flask_wtf") is None:
            raise FtlabError(
                "--no-auth not given, but MLflow's basic-auth app needs Flask-WTF: "
                "pip install -c constraints.txt 'ftlab[server]'"
            )
        if not env.get("MLFLOW_AUTH_ADMIN_PASSWORD") and not _admin_exists_hint(store):
            raise FtlabError(
                "MLFLOW_AUTH_ADMIN_PASSWORD: set the admin's password for the first start (the "
                "admin user is created with it; later starts ignore it)"
            )
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(
            _auth_config(store, artifacts_destination, default_permission)
        )
        env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", _session_secret(artifacts_destination))
    Path(artifacts_destination).mkdir(parents=True, exist_ok=True)
    command = server_command(store, artifacts_destination, host, port, auth)
    shown = f"http://{host}:{port}"
    print(
        f"MLflow team server at {shown} (runs and users in {redact_text(store)}, artifacts in "
        f"{artifacts_destination}{', logins required' if auth else ''}); clients: "
        f"MLFLOW_TRACKING_URI={shown} MLFLOW_TRACKING_USERNAME=... MLFLOW_TRACKING_PASSWORD=...",
        flush=True,
    )
    return run_server(command, host, port, env, links=False)


def _auth_config(store: str, artifacts_destination: str, default_permission: str) -> Path:
    """The basic-auth app's settings, beside the artifacts: users live in the team database."""
    path = Path(artifacts_destination).resolve().parent / "basic_auth.ini"
    path.write_text(
        AUTH_INI.format(
            default_permission=default_permission,
            database_uri=store,
            admin_username=os.environ.get("MLFLOW_AUTH_ADMIN_USERNAME", "admin"),
        )
    )
    path.chmod(0o600)  # it names the database, password included
    return path


def _session_secret(artifacts_destination: str) -> str:
    """The auth app's CSRF/session key: made once and kept beside the artifacts (readable by the
    server's user alone), so logins survive a restart."""
    path = Path(artifacts_destination).resolve().parent / "flask_secret_key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()


def _admin_exists_hint(store: str) -> bool:
    """Whether the auth tables exist already (then the admin password is not needed)."""
    try:
        from sqlalchemy import create_engine, inspect

        engine = create_engine(store)
        try:
            return "users" in inspect(engine).get_table_names()
        finally:
            engine.dispose()
    except Exception:  # noqa: BLE001 - an unreachable database is reported by the server itself
        return False
