"""``import spendfuse.auto``: configure from the environment, instrument both SDKs, flush at exit.

Put it first in the program's entry point. Settings come from ``SPENDFUSE_*`` variables and the
TOML file named by ``SPENDFUSE_CONFIG``; export from the standard ``OTEL_*`` variables, or, when no
OTLP endpoint is set, to the local ledger (``SPENDFUSE_LEDGER``; ``off`` turns it off). A malformed
setting raises ``spendfuse.ConfigError`` here, at start-up, not at the first model call.
"""

from __future__ import annotations

from spendfuse.instrumentation.instrumentor import instrument
from spendfuse.ledger.install import install_default_ledger
from spendfuse.telemetry.setup import configure_from_env, flush_at_exit

_providers = configure_from_env()
# No backend configured: record to the local ledger so `spendfuse runs` still has answers.
_tracer_provider = _providers.tracer_provider or install_default_ledger()
instrument(tracer_provider=_tracer_provider, meter_provider=_providers.meter_provider)
flush_at_exit(_providers)
