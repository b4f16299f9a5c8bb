"""The ``spendfuse`` command line: runs, show, explain, spend, budgets, demo."""

from spendfuse.cli.main import main

__all__ = ["main"]
