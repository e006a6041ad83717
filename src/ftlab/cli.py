"""The `ftlab` command. Kept free of heavy imports so `ftlab --help` answers at once.

`ftlab train ...` replaces this process with `python -m ftlab.train ...`: the training command line
is then a plain Hydra one that Lightning's DDP launcher can re-execute for every rank.
"""

from __future__ import annotations

import argparse
import os
import sys

SUBCOMMANDS = {
    "train": "fine-tune a model (Hydra overrides; -m for a sweep; --help lists config groups)",
    "ui": "serve the MLflow UI for this project's tracking store on 127.0.0.1",
    "runs": "list recent runs: status, trial state, key params, main metrics",
    "compare": "config and metric differences of two or more runs, side by side",
    "reproduce": "run a logged run's config again as a new run and compare the final metrics",
    "resume": "continue an interrupted run from its last checkpoint, in the same MLflow run",
    "sync": "send what a run could not send while its tracking server was away",
    "dashboard": "serve optuna-dashboard for a sweep's study storage on 127.0.0.1",
    "server": "a team's MLflow server: PostgreSQL, proxied artifacts, logins",
}


_STORE_HELP = "default: $MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftlab",
        description="Fine-tuning experiments: Hydra configs, Lightning training, MLflow tracking, Optuna sweeps.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("train", help=SUBCOMMANDS["train"], add_help=False)
    for name, add_arguments in _ARGUMENTS.items():
        sub = commands.add_parser(name, help=SUBCOMMANDS[name])
        add_arguments(sub)
        if name not in ("server", "dashboard"):
            sub.add_argument("--tracking-uri", default=None, help=_STORE_HELP)
    return parser


def _ui_arguments(ui: argparse.ArgumentParser) -> None:
    ui.add_argument("--port", type=int, default=5000)


def _runs_arguments(runs: argparse.ArgumentParser) -> None:
    runs.add_argument("--experiment", default=None, help="only this experiment")
    runs.add_argument("--sort", default=None, metavar="METRIC", help="e.g. test/mse (best first)")
    runs.add_argument("--limit", type=int, default=20)


def _compare_arguments(compare: argparse.ArgumentParser) -> None:
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run ids or run names")


def _reproduce_arguments(reproduce: argparse.ArgumentParser) -> None:
    reproduce.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a final metric (or, on CPU, the weights hash) differs",
    )
    reproduce.add_argument(
        "--rtol",
        type=float,
        default=None,
        help="relative tolerance for --check (default: exact on CPU, 1e-3 when a GPU trained)",
    )
    _stored_config_arguments(reproduce)


def _stored_config_arguments(sub: argparse.ArgumentParser) -> None:
    """What `reproduce` and `resume` accept of a config from a store (see config/trust.py)."""
    sub.add_argument("run", metavar="RUN", help="run id or run name")
    sub.add_argument(
        "--trust",
        action="store_true",
        help="run the config as it is: no check of its targets, settings or interpolations",
    )
    sub.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="MODULE",
        help="also trust _target_s named and defined under this module, or this exact "
        "callable (repeatable)",
    )
    sub.add_argument(
        "--allow-env",
        action="append",
        default=[],
        metavar="VARIABLE",
        help="let the config read this environment variable with ${oc.env:...} (repeatable)",
    )


def _sync_arguments(sync: argparse.ArgumentParser) -> None:
    sync.add_argument("run_dir", metavar="RUN_DIR", help="the run's output folder")


def _dashboard_arguments(dashboard: argparse.ArgumentParser) -> None:
    dashboard.add_argument(
        "--storage", default=None, help="the study storage; default: ./mlruns/optuna.db"
    )
    dashboard.add_argument("--port", type=int, default=8080)


def _server_arguments(server: argparse.ArgumentParser) -> None:
    server.add_argument(
        "--backend-store-uri", default=None, metavar="URL",
        help="the team database, postgresql://USER:PASSWORD@HOST/DB (default: $FTLAB_SERVER_DB)",
    )  # fmt: skip
    server.add_argument(
        "--artifacts-destination", default="mlflow-server/artifacts",
        help="where the server keeps artifacts (a folder, or s3://... and the like)",
    )  # fmt: skip
    server.add_argument("--host", default="127.0.0.1", help="0.0.0.0 or the team's address")
    server.add_argument("--port", type=int, default=5000)
    server.add_argument("--no-auth", action="store_true", help="no logins (trusted networks)")
    server.add_argument(
        "--default-permission", default="READ", choices=["READ", "EDIT", "MANAGE", "NO_PERMISSIONS"],
        help="what a user may do with others' experiments unless granted more",
    )  # fmt: skip


_ARGUMENTS = {
    "ui": _ui_arguments,
    "runs": _runs_arguments,
    "compare": _compare_arguments,
    "reproduce": _reproduce_arguments,
    "resume": _stored_config_arguments,
    "sync": _sync_arguments,
    "dashboard": _dashboard_arguments,
    "server": _server_arguments,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        os.execv(sys.executable, [sys.executable, "-m", "ftlab.train", *argv[1:]])
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 0 if not argv else 2
    from ftlab.errors import FtlabError, disk_full, no_room
    from ftlab.redact import redact_text

    try:
        return _dispatch(args)
    except FtlabError as err:
        print(f"error: {redact_text(str(err))}", file=sys.stderr)
        return 2
    except Exception as err:  # a library's own error: its traceback, without passwords or secrets
        full = disk_full(err)
        if full is not None:  # e.g. a checkpoint downloaded for a resume into a full temp folder
            where = os.path.dirname(full.filename) if full.filename else "a folder it writes to"
            print(f"error: {no_room(full, where)}", file=sys.stderr)
            return 2
        import traceback

        print(redact_text(traceback.format_exc()), file=sys.stderr, end="")
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    from ftlab.errors import FtlabError

    if args.command == "ui":
        from ftlab.tracking.ui import serve

        return serve(args.port, args.tracking_uri)
    if args.command == "reproduce":
        from ftlab.reproduce.commands import reproduce_command

        return reproduce_command(
            args.run, args.tracking_uri, args.check, args.rtol, args.trust, args.allow,
            args.allow_env,
        )  # fmt: skip
    if args.command == "resume":
        from ftlab.reproduce.commands import resume_command

        return resume_command(args.run, args.tracking_uri, args.trust, args.allow, args.allow_env)
    if args.command == "server":
        from ftlab.tracking.server import serve_team

        return serve_team(
            args.backend_store_uri, args.artifacts_destination, args.host, args.port,
            not args.no_auth, args.default_permission,
        )  # fmt: skip
    if args.command == "dashboard":
        from ftlab.sweep.dashboard import serve_dashboard

        return serve_dashboard(args.storage, args.port)
    if args.command == "sync":
        from ftlab.tracking.sync import sync_command

        return sync_command(args.run_dir, args.tracking_uri)
    from ftlab.tracking import listing

    if args.command == "runs":
        return listing.runs_command(args.tracking_uri, args.experiment, args.sort, args.limit)
    if len(args.runs) < 2:
        raise FtlabError("compare needs at least two runs")
    return listing.compare_command(args.tracking_uri, args.runs)


if __name__ == "__main__":
    sys.exit(main())
