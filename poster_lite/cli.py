"""`poster-lite ...`: one entry point; each feature module registers its own subcommands.

A module in COMMAND_MODULES defines `register(subparsers)`, which adds parsers whose
defaults carry `func=handler`; `handler(args)` returns the exit code. User mistakes
(UserError, missing files, bad checkpoints) print one clear line and exit with 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = [
    "poster_lite.commands.model",      # complexity
    "poster_lite.data.commands",       # synthfer, data check
    "poster_lite.engine_commands",     # train, evaluate, predict, pretrain-backbones
    "poster_lite.speed_commands",      # bench
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poster-lite", description="POSTER for facial expression recognition: "
                                     "train, evaluate, predict, data tools and benchmarks.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:      # a feature not built (yet): its commands are absent
                continue
            raise
        module.register(sub)
    return parser


def main(argv=None) -> int:
    from .errors import UserError
    from .models.official import CheckpointMismatch

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, CheckpointMismatch, FileNotFoundError, NotADirectoryError) as e:
        print(f"poster-lite {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
