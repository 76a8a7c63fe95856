"""`poster-lite COMMAND ...`: every subcommand of the package, registered in COMMANDS below.

Each module in this package defines `add_parsers(subparsers)`; a parser's default `func`
is its handler, `func(args)` returns the exit code.

Exit codes, one policy for every command:
  0  done
  1  the run failed (training diverged) or an internal error; the traceback with --debug
  2  a mistake in the command or a problem of the environment (a bad option, a missing or
     unreadable file, a checkpoint for another model, an absent device, a full disk):
     one or two lines that name the problem, the path and the fix
  130 interrupted (Ctrl-C)
"""
from __future__ import annotations

import argparse
import errno
import sys
import traceback

from . import bench, complexity, data, evaluate, official, predict, pretrain, train

COMMANDS = (train, evaluate, predict, pretrain, complexity, data, bench, official)


class Parser(argparse.ArgumentParser):
    """argparse, with a bad option reported in two lines (the problem, where to read more)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n(`{self.prog} --help` lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="poster-lite", description="POSTER for facial expression recognition: "
                    "train, evaluate, predict, data tools and benchmarks.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    # The same flag after the subcommand (`poster-lite train ... --debug`); SUPPRESS keeps
    # a subcommand's parser from resetting the value given before it.
    debug = Parser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parsers(sub, [debug])
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:               # --help (0) or a bad option (2, already explained)
        return stop.code if isinstance(stop.code, int) else 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the policy above: explain, never a bare traceback
        code, message = explain(e)
        if code == 1 and args.debug:
            traceback.print_exc()
        action = getattr(args, "data_command", None)          # `data check`
        print(f"poster-lite {args.command}{' ' + action if action else ''}: error: {message}", file=sys.stderr)
        return code


def explain(e: Exception) -> tuple:
    """(exit code, message) for an exception that reached the command line."""
    import torch

    from ..errors import UserError
    from ..models.official import CheckpointMismatch
    from ..training import TrainingDiverged

    if isinstance(e, (UserError, CheckpointMismatch)):
        return 2, str(e)
    if isinstance(e, TrainingDiverged):
        return 1, str(e)
    if isinstance(e, (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))):
        return 2, "out of memory; lower --batch-size (or use a smaller model)"
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        what = e.strerror or str(e)
        fixes = {errno.ENOSPC: "free some disk space, or write somewhere else",
                 errno.EACCES: "check the permissions of that path", errno.EROFS: "write somewhere else",
                 errno.ENOENT: "check the path", errno.ENOTDIR: "check the path",
                 errno.EISDIR: "give a file, not a folder"}
        return 2, f"{where}{what}" + (f"\n  fix: {fixes[e.errno]}" if e.errno in fixes else "")
    return 1, (f"internal error {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}\n"
               "  (a bug in poster-lite: rerun with --debug for the traceback, and please report it)")
