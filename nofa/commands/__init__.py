"""Subcommands of the `nofa` CLI, one module each (see nofa/cli.py)."""
