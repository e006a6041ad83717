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
    "runs": "list recent runs: status, key params, main metrics",
    "compare": "config and metric differences of two or more runs, side by side",
}


_STORE_HELP = "default: $MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftlab",
        description="Fine-tuning experiments: Hydra configs, Lightning training, MLflow tracking, Optuna sweeps.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("train", help=SUBCOMMANDS["train"], add_help=False)
    ui = commands.add_parser("ui", help=SUBCOMMANDS["ui"])
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--tracking-uri", default=None, help=_STORE_HELP)
    runs = commands.add_parser("runs", help=SUBCOMMANDS["runs"])
    runs.add_argument("--experiment", default=None, help="only this experiment")
    runs.add_argument("--sort", default=None, metavar="METRIC", help="e.g. test/mse (best first)")
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--tracking-uri", default=None, help=_STORE_HELP)
    compare = commands.add_parser("compare", help=SUBCOMMANDS["compare"])
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run ids or run names")
    compare.add_argument("--tracking-uri", default=None, help=_STORE_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        os.execv(sys.executable, [sys.executable, "-m", "ftlab.train", *argv[1:]])
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 0 if not argv else 2
    from ftlab.errors import FtlabError

    try:
        return _dispatch(args)
    except FtlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    from ftlab.errors import FtlabError

    if args.command == "ui":
        from ftlab.tracking.ui import serve

        return serve(args.port, args.tracking_uri)
    from ftlab.tracking import inspect

    if args.command == "runs":
        return inspect.runs_command(args.tracking_uri, args.experiment, args.sort, args.limit)
    if len(args.runs) < 2:
        raise FtlabError("compare needs at least two runs")
    return inspect.compare_command(args.tracking_uri, args.runs)


if __name__ == "__main__":
    sys.exit(main())
