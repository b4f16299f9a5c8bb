"""Attach the local ledger to the tracer provider spendfuse's spans go to, however it was started.

``spendfuse.instrument()``, ``import spendfuse.auto`` and ``opentelemetry-instrument`` all build the
runtime through one function, which calls :func:`attach_ledger`. The rule:

* the ledger is off (``ledger = "off"`` / ``SPENDFUSE_LEDGER=off``) or the OpenTelemetry SDK is
  disabled (``OTEL_SDK_DISABLED=true``): nothing is attached;
* the provider spendfuse traces with (the one passed to ``instrument()``, else the global one) is an
  SDK ``TracerProvider`` — the application's own, the one ``opentelemetry-instrument`` configured,
  or the OTLP one ``spendfuse.auto`` made: the ledger's span processor is *added* to it, next to the
  application's exporters, which keep working unchanged;
* no SDK provider exists yet: spendfuse creates one holding only the ledger processor and traces
  with it privately. It never claims the global provider: an application that configures
  OpenTelemetry after ``instrument()`` must get its ``set_tracer_provider`` honoured. When it does,
  spendfuse adds the ledger to that provider and traces with it from then on
  (``follow_global_provider``), so the application's exporters see spendfuse's spans too.

A provider gets at most one ledger processor, whatever the number of ``instrument()`` calls, so a
run is never recorded twice.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from spendfuse.ledger.exporter import LedgerExporter
from spendfuse.ledger.paths import ledger_path_for_writing, retention_days

log = logging.getLogger("spendfuse")

_lock = threading.Lock()
# Weak keys: tests and short-lived apps make and drop providers; an id may be reused after that.
_attached: weakref.WeakKeyDictionary[Any, tuple[Path, BatchSpanProcessor]] = weakref.WeakKeyDictionary()


def _sdk_disabled(environ: Mapping[str, str]) -> bool:
    return environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def ledger_processor(
    provider: TracerProvider, path: Path, *, retention: float | None = None, delay_millis: int = 5000
) -> BatchSpanProcessor:
    """The ledger processor on ``provider``, added unless one is already there (then that one is kept)."""
    with _lock:
        known = _attached.get(provider)
        if known is not None:
            if known[0] != path:
                log.warning(
                    "spendfuse: this tracer provider already records to the ledger %s; not adding %s as well",
                    known[0],
                    path,
                )
            return known[1]
        processor = BatchSpanProcessor(
            LedgerExporter(path, retention_days=retention), schedule_delay_millis=delay_millis
        )
        provider.add_span_processor(processor)
        _attached[provider] = (path, processor)
        return processor


def attach_ledger(configured: str | None, tracer_provider: Any = None, environ: Mapping[str, str] | None = None) -> Any:
    """Attach the ledger (see the module doc); return the tracer provider spendfuse should use.

    ``configured`` is the ``ledger`` setting (code, then ``SPENDFUSE_LEDGER``, then the TOML file).
    Raises ``ConfigError`` when it names a file in a folder that does not exist.
    """
    environ = os.environ if environ is None else environ
    if _sdk_disabled(environ):
        return tracer_provider
    try:
        path = ledger_path_for_writing(configured, environ)
    except OSError as error:
        # The default folder cannot be made (a read-only home): the program runs on, unrecorded.
        log.warning("spendfuse: cannot create the ledger folder (%s); running without the local ledger", error)
        return tracer_provider
    if path is None:
        return tracer_provider
    target = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    if not isinstance(target, TracerProvider):
        if tracer_provider is not None:
            log.warning(
                "spendfuse: the tracer provider given to instrument() is not an SDK TracerProvider; "
                "the local ledger cannot record from it"
            )
            return tracer_provider
        with _lock:
            # One per ledger file for the process: instrument() may run many times (each would
            # otherwise start another batch processor thread writing the same file).
            target = _private.get(path)
            if target is None:
                resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME", "spendfuse-agent")})
                target = _private[path] = TracerProvider(resource=resource)
        tracer_provider = target
    ledger_processor(target, path, retention=retention_days(environ))
    return tracer_provider


# Providers spendfuse made for the ledger alone, while the application had none of its own.
_private: dict[Path, TracerProvider] = {}


def is_private(provider: Any) -> bool:
    """Whether ``provider`` is one spendfuse made for the ledger (see ``attach_ledger``)."""
    return provider is not None and any(provider is made for made in list(_private.values()))


def install_default_ledger(environ: Mapping[str, str] | None = None) -> Any:
    """Kept for programs written against 0.1: attach the ledger configured in the environment."""
    from spendfuse.config.settings import load_settings

    environ = os.environ if environ is None else environ
    attach_ledger(load_settings(environ=environ).ledger, None, environ)
    provider = trace.get_tracer_provider()
    return provider if isinstance(provider, TracerProvider) else None
