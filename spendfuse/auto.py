"""``import spendfuse.auto``: configure from the environment, instrument both SDKs, flush at exit.

Put it first in the program's entry point. Settings come from ``SPENDFUSE_*`` variables and the
TOML file named by ``SPENDFUSE_CONFIG``; export from the standard ``OTEL_*`` variables, and always to
the local ledger too (``SPENDFUSE_LEDGER``; ``off`` turns it off). A malformed
setting raises ``spendfuse.ConfigError`` here, at start-up, not at the first model call.
"""

from __future__ import annotations

from spendfuse.errors import ConfigError
from spendfuse.instrumentation.instrumentor import instrument
from spendfuse.telemetry.setup import configure_from_env, flush_at_exit

try:
    _providers = configure_from_env()
    # instrument() attaches the local ledger to whichever tracer provider is in use (unless it is off).
    instrument(tracer_provider=_providers.tracer_provider, meter_provider=_providers.meter_provider)
except ConfigError as error:
    # The user's setting is at fault, not our internals: the traceback stops here, message first.
    raise error.with_traceback(None) from None
flush_at_exit(_providers)
