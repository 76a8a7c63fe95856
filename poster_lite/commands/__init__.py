"""CLI subcommands that belong to no larger feature module."""
