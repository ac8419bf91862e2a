"""The ``tuneladder`` command: debugging one trial, and looking at a ladder or stopping it."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from tuneladder.ladder.config import ConfigError
    from tuneladder.tasks import TaskError

    try:
        if args.command == "trial":
            return _trial(args)
        if args.command == "status":
            return _status(args)
        if args.command == "stop":
            return _stop(args)
        if args.command == "config":
            return _config(args)
    except (ConfigError, TaskError, FileNotFoundError) as err:
        print(f"tuneladder: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # read by `head` or a pager that quit: what it wanted was printed
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 1


def _parser() -> argparse.ArgumentParser:
    """The command line: one subcommand each for a trial, the config, the status and a stop."""
    from tuneladder import __version__

    # the docstring's reST quotes would show as they are
    parser = argparse.ArgumentParser(
        prog="tuneladder", description=(__doc__ or "").replace("``", "")
    )
    parser.add_argument("--version", action="version", version=f"tuneladder {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    trial = commands.add_parser("trial", help="train one configuration, one line per epoch")
    trial.add_argument("--config", default="config/config.yaml", type=Path)
    trial.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="lr=1e-3 sets train.lr, precision=bf16 a key of the config, coarse.trials=5 a path",
    )
    trial.add_argument("--seed", type=int, default=0, help="the trial's training seed")
    trial.add_argument("--out", type=Path, required=True, help="directory for the trial's files")
    trial.add_argument(
        "--data",
        type=Path,
        default=None,
        help="prepared data (default: the experiment's results/<experiment>/data where"
        " it was prepared from this config's task, options and seed, else prepared into"
        " OUT)",
    )

    full = commands.add_parser(
        "config",
        help="print the experiment's whole config: every key, defaults and budget filled in",
    )
    full.add_argument("--config", default="config/config.yaml", type=Path)
    full.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    full.add_argument(
        "--reference",
        action="store_true",
        help="print the reference of every config key (Markdown, from the schema) instead",
    )

    status = commands.add_parser(
        "status", help="where a running or finished ladder stands, and what is left"
    )
    status.add_argument(
        "--config",
        type=Path,
        default=Path("config/config.yaml"),
        help="the experiment's config (default: %(default)s): its folder, and the trial"
        " counts where it changed since the last run started (else that run's, overrides"
        " included)",
    )
    status.add_argument(
        "--results",
        type=Path,
        default=None,
        help="read this folder instead of results/<experiment>/",
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=5.0,
        default=None,
        metavar="SECONDS",
        help="show it again every SECONDS (default 5) until the ladder finishes or fails",
    )

    stop = commands.add_parser(
        "stop",
        help="stop a running ladder at its trials' next epoch end, their state saved;"
        " the same command goes on from there",
    )
    stop.add_argument(
        "--config",
        type=Path,
        default=Path("config/config.yaml"),
        help="the experiment's config (default: %(default)s): its folder",
    )
    stop.add_argument(
        "--results", type=Path, default=None, help="stop the ladder of this folder instead"
    )
    return parser


def _config(args: argparse.Namespace) -> int:
    """The resolved config as YAML: what a run of it would use, and a file DVC can read
    (``dvc.yaml`` names keys of ``config/config.yaml`` as params, so each must be in it)."""
    import yaml

    from tuneladder.ladder.config import load_config

    if args.reference:
        from tuneladder.ladder.reference import config_reference

        print(config_reference(), end="")
        return 0
    config = load_config(args.config, args.overrides)
    print(f"# {args.config}, resolved by tuneladder config: every key, defaults filled in")
    print(yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=100), end="")
    return 0


def _trial(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from tuneladder.api import run_trial
    from tuneladder.ladder.config import load_config

    config = load_config(args.config, args.overrides)
    metric = config["metric"]

    def ready(info: dict) -> None:
        print(
            f"setup {time.perf_counter() - started:.2f}s  device {info['device']}  "
            f"{info['train']} train / {info['val']} val",
            flush=True,
        )

    def show(row: dict[str, float]) -> None:
        print(
            f"epoch {row['epoch']:>3}  train_loss {row['train_loss']:.4f}  "
            f"val_loss {row['val_loss']:.4f}  val_{metric['name']} {row['val_metric']:.4f}  "
            f"lr {row['lr']:.2e}  {row['epoch_seconds']:.2f}s",
            flush=True,
        )

    try:
        result = run_trial(
            config, args.out, seed=args.seed, data_dir=args.data, on_start=ready, on_epoch=show
        )
    except (ValueError, OSError) as err:  # bad data: one line naming the file or column
        print(f"tuneladder: error: {err}", file=sys.stderr)
        return 2
    best = result["best_val_metric"]
    print(
        f"{result['status']}: best val_{metric['name']} "
        f"{'none' if best is None else f'{best:.4f}'} at epoch {result['best_epoch']};"
        f" files in {args.out}"
    )
    if result["reason"]:
        print(f"reason: {result['reason']}")
    return 0 if result["status"] == "ok" else 1


def _stop(args: argparse.Namespace) -> int:
    """Ask a running ladder to stop (:mod:`tuneladder.store.stop_request`): a SIGTERM to
    Snakemake would let every sweep worker train until its rung is done."""
    from tuneladder.execution.status import RUN_CONFIG_FILE, counted_config
    from tuneladder.infra.stale_locks import lock_holders, locks_outputs_under
    from tuneladder.store.stop_request import StopFile

    results = args.results or counted_config(args.config)[1]
    workdir = _workdir(results)
    if not (results / RUN_CONFIG_FILE).is_file():
        return _refuse(f"no ladder has started in {results}: nothing to stop")
    # a lock names the outputs of the run that holds it; on a cluster's node the run
    # shows no process here, only its lock
    locked = locks_outputs_under(workdir, results)
    if locked is False:
        return _refuse(
            f"the Snakemake run in {workdir.resolve()} works on another experiment's folder"
            f" than {results}: --results names the one to stop"
        )
    if locked is None and lock_holders(workdir) == []:
        return _refuse(
            f"no Snakemake process runs the ladder in {results}: nothing to stop"
            " (`tuneladder status` says where it stands)"
        )
    StopFile(results).request("tuneladder stop")
    print(
        f"tuneladder: asked the ladder in {results} to stop: each worker stops at its"
        " trial's next epoch end, the trial's state saved, and Snakemake ends once its"
        " running jobs have; the same command goes on from there"
    )
    return 0


def _refuse(line: str) -> int:
    print(f"tuneladder: {line}", file=sys.stderr)
    return 1


def _workdir(results: Path) -> Path:
    """The folder Snakemake runs in: the one that holds results/<experiment>/."""
    return results.resolve().parent.parent if results.parent.name == "results" else Path.cwd()


def _status(args: argparse.Namespace) -> int:
    import json

    from tuneladder.execution.status import counted_config, format_status, ladder_status
    from tuneladder.infra.stale_locks import lock_holders

    config, results = counted_config(args.config, args.results)
    workdir = _workdir(results)
    while True:
        status = ladder_status(
            results,
            config=config,
            stale_s=config["stale_claim_s"],
            snakemake_running=bool(lock_holders(workdir)),
        )
        if args.watch is not None and sys.stdout.isatty():
            print("\033[H\033[J", end="")  # a fresh screen each time, as `watch` shows it
        print(json.dumps(status, indent=2) if args.json else format_status(status), end="")
        if args.json:
            print()
        sys.stdout.flush()  # a closed pipe shows here, inside main's handler
        if args.watch is None or status["state"] in ("finished", "failed"):
            return 0
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0
