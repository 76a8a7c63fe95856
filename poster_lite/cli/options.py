"""Checked option types shared by the subcommands: a bad value stops at parsing, saying what is allowed."""
from __future__ import annotations

import argparse

from ..errors import UserError, check_number, describe_range


def number(integer: bool = False, **limits):
    """An argparse type: a number (whole with `integer`) in the range `limits` (see check_number)."""
    allowed = describe_range(integer=integer, **limits)

    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
            return check_number("value", value, integer=integer, **limits)
        except (ValueError, UserError):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
    parse.__name__ = allowed
    return parse


def preset(name: str) -> str:
    """A model preset name (checked by the config module, which lists the known ones)."""
    from ..config import make_config
    try:
        make_config(name)
    except (ValueError, TypeError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return name.lower()


def device(name: str) -> str:
    """A device this machine has (cpu, cuda, cuda:1, mps, or auto)."""
    from ..device import pick_device
    try:
        pick_device(name)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return name


def add_device(parser, what: str = "the best available") -> None:
    parser.add_argument("--device", type=device, default=None,
                        help=f"cpu, cuda, cuda:1, mps or auto (default: {what}); checked against this machine")
