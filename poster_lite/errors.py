"""Errors that mean "the user gave something wrong" (printed without a traceback by the CLI),
and the range check that raises them for numeric arguments."""


class UserError(ValueError):
    """Bad input from the user: a wrong path, layout, name or file. The message says what and where."""


def describe_range(low=None, high=None, low_open: bool = False, high_open: bool = False,
                   integer: bool = False) -> str:
    """What a range allows, in words: "a whole number >= 1", "a number in (0, 1]"."""
    kind = "a whole number" if integer else "a number"
    low, high = (f"{v:g}" if isinstance(v, float) else v for v in (low, high))
    if low is not None and high is not None:
        return f"{kind} in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{kind} {'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{kind} {'<' if high_open else '<='} {high}"
    return kind


def check_number(name: str, value, low=None, high=None, low_open: bool = False, high_open: bool = False,
                 integer: bool = False):
    """`value` when it is a number in the range; else UserError saying what `name` allows."""
    import math
    from numbers import Integral, Real

    allowed = describe_range(low, high, low_open, high_open, integer)
    is_number = isinstance(value, Integral if integer else Real)
    if isinstance(value, bool) or not is_number or not math.isfinite(value):
        raise UserError(f"{name} must be {allowed}, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise UserError(f"{name} must be {allowed}, got {value!r}")
    return value
