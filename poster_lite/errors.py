"""Errors that mean "the user gave something wrong" (printed without a traceback by the CLI)."""


class UserError(ValueError):
    """Bad input from the user: a wrong path, layout, name or file. The message says what and where."""
