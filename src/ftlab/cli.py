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
    "reproduce": "run a logged run's config again as a new run and compare the final metrics",
    "resume": "continue an interrupted run from its last checkpoint, in the same MLflow run",
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
    reproduce = commands.add_parser("reproduce", help=SUBCOMMANDS["reproduce"])
    reproduce.add_argument("run", metavar="RUN", help="run id or run name")
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
    resume = commands.add_parser("resume", help=SUBCOMMANDS["resume"])
    resume.add_argument("run", metavar="RUN", help="run id or run name")
    for sub in (reproduce, resume):
        sub.add_argument("--tracking-uri", default=None, help=_STORE_HELP)
        sub.add_argument(
            "--trust",
            action="store_true",
            help="run the config even if a _target_ is outside the trusted packages",
        )
        sub.add_argument(
            "--allow",
            action="append",
            default=[],
            metavar="MODULE",
            help="also trust _target_s under this module (repeatable)",
        )
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
    if args.command == "reproduce":
        from ftlab.reproduce.commands import reproduce_command

        return reproduce_command(
            args.run, args.tracking_uri, args.check, args.rtol, args.trust, args.allow
        )
    if args.command == "resume":
        from ftlab.reproduce.commands import resume_command

        return resume_command(args.run, args.tracking_uri, args.trust, args.allow)
    from ftlab.tracking import inspect

    if args.command == "runs":
        return inspect.runs_command(args.tracking_uri, args.experiment, args.sort, args.limit)
    if len(args.runs) < 2:
        raise FtlabError("compare needs at least two runs")
    return inspect.compare_command(args.tracking_uri, args.runs)


if __name__ == "__main__":
    sys.exit(main())
