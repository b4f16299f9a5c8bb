"""The local ledger: every run, call and tool span in a SQLite file, for ``spendfuse runs`` & co.

``LedgerExporter`` writes it (behind a ``BatchSpanProcessor``); ``attach_ledger`` adds it to the
tracer provider spendfuse uses, however spendfuse was started; ``queries`` reads it back for the CLI.
"""

from spendfuse.ledger.exporter import LedgerExporter
from spendfuse.ledger.install import attach_ledger, install_default_ledger
from spendfuse.ledger.paths import default_ledger_path, resolve_ledger_path

__all__ = ["LedgerExporter", "attach_ledger", "default_ledger_path", "install_default_ledger", "resolve_ledger_path"]
