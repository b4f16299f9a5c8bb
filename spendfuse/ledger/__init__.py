"""The local ledger: every run, call and tool span in a SQLite file, for ``spendfuse runs`` & co.

``LedgerExporter`` writes it (behind a ``BatchSpanProcessor``); ``install_default_ledger`` sets that
up when no telemetry backend is configured; ``queries`` reads it back for the CLI.
"""

from spendfuse.ledger.exporter import LedgerExporter
from spendfuse.ledger.install import install_default_ledger
from spendfuse.ledger.paths import default_ledger_path, resolve_ledger_path

__all__ = ["LedgerExporter", "default_ledger_path", "install_default_ledger", "resolve_ledger_path"]
