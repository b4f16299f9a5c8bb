"""``spendfuse.instrument()`` / ``uninstrument()`` and the OpenTelemetry ``BaseInstrumentor``.

One patch point per SDK: ``SyncAPIClient.request`` and ``AsyncAPIClient.request`` of
``anthropic._base_client`` and ``openai._base_client``. SDKs imported later are patched when they
are imported (a post-import hook), so ``import spendfuse.auto`` may come first.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import weakref
from collections.abc import Collection, Mapping
from dataclasses import replace
from types import ModuleType
from typing import Any

import wrapt
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.trace import ProxyTracerProvider, Tracer

from spendfuse import frameworks, runtime
from spendfuse._log import log_internal_error
from spendfuse._version import __version__
from spendfuse.budgets.breaker import Breaker
from spendfuse.budgets.pricing import PriceBook
from spendfuse.budgets.stores import open_store
from spendfuse.config.settings import Settings, load_settings
from spendfuse.instrumentation import anthropic as anthropic_provider
from spendfuse.instrumentation import openai as openai_provider
from spendfuse.instrumentation.attempts import sleep_wrapper
from spendfuse.instrumentation.provider import Sdk
from spendfuse.instrumentation.wrappers import async_wrapper, sync_wrapper
from spendfuse.ledger.install import attach_ledger, is_private
from spendfuse.telemetry import names
from spendfuse.telemetry.calls import CallTelemetry
from spendfuse.telemetry.instruments import Instruments
from spendfuse.telemetry.stamping import RunStampingProcessor

SDKS: tuple[Sdk, ...] = (anthropic_provider.SDK, openai_provider.SDK)

_RETRY_HOOK = "_sleep_for_retry"  # called by both SDKs before every retry
_RETRYING_CLASSES = ("SyncAPIClient", "AsyncAPIClient")

_lock = threading.RLock()
_patched: dict[str, ModuleType] = {}  # SDK base-client module name -> module, while patched
_hooks_registered: set[str] = set()
# Weak keys: a provider's id can be reused after it is collected (tests make one per test).
_stamped_providers: weakref.WeakSet[Any] = weakref.WeakSet()
_instruments_by_meter_provider: weakref.WeakKeyDictionary[Any, Instruments] = weakref.WeakKeyDictionary()
_saved_sdk_tracer: dict[str, Any] = {}


def _patch_sdk(spec: Sdk, base_client: ModuleType, suppress_sdk_spans: bool) -> None:
    with _lock:
        if spec.base_client_module in _patched:
            return
        provider = spec.provider()
        wrapt.wrap_function_wrapper(base_client, "SyncAPIClient.request", sync_wrapper(provider))
        wrapt.wrap_function_wrapper(base_client, "AsyncAPIClient.request", async_wrapper(provider))
        # The SDK's own retries: every attempt is admitted again before it is sent (see attempts).
        for client_class in _RETRYING_CLASSES:
            if hasattr(getattr(base_client, client_class, None), _RETRY_HOOK):
                wrapt.wrap_function_wrapper(base_client, f"{client_class}.{_RETRY_HOOK}", sleep_wrapper)
        _patched[spec.base_client_module] = base_client
        base: Any = getattr(base_client, "BaseClient", None)
        tracer_property = getattr(base, "_tracer", None)
        if suppress_sdk_spans and isinstance(tracer_property, property):
            # The SDK's own call span would carry the same token counts as ours: anything summing
            # spans would count them twice. Ours are a superset, so the SDK's are switched off.
            _saved_sdk_tracer[spec.base_client_module] = tracer_property
            base._tracer = property(lambda _self: None)


def _unpatch_all() -> None:
    frameworks.uninstall()  # spendfuse.frameworks: agent framework adapters
    with _lock:
        for name, base_client in list(_patched.items()):
            unwrap(base_client.SyncAPIClient, "request")
            unwrap(base_client.AsyncAPIClient, "request")
            for client_class in _RETRYING_CLASSES:
                unwrap(getattr(base_client, client_class, None), _RETRY_HOOK)
            saved = _saved_sdk_tracer.pop(name, None)
            if saved is not None:
                base_client.BaseClient._tracer = saved
            del _patched[name]


def _patch_available(suppress_sdk_spans: bool) -> None:
    for spec in SDKS:
        if spec.module in sys.modules:
            _patch_sdk(spec, importlib.import_module(spec.base_client_module), suppress_sdk_spans)
        elif spec.module not in _hooks_registered:
            _hooks_registered.add(spec.module)
            wrapt.register_post_import_hook(_on_import(spec), spec.module)


def _on_import(spec: Sdk) -> Any:
    def hook(_module: ModuleType) -> None:
        active = runtime.current()
        if active is not None:
            _patch_sdk(spec, importlib.import_module(spec.base_client_module), active.settings.suppress_sdk_spans)

    return hook


def _instruments(meter_provider: Any) -> Instruments:
    key = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    instruments = _instruments_by_meter_provider.get(key)
    if instruments is None:
        meter = metrics.get_meter("spendfuse", __version__, meter_provider=meter_provider)
        instruments = _instruments_by_meter_provider[key] = Instruments(meter)
    return instruments


def _stamp_runs(tracer_provider: Any) -> None:
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    add = getattr(provider, "add_span_processor", None)
    if add is None or provider in _stamped_providers:
        return
    _stamped_providers.add(provider)
    add(RunStampingProcessor())


def _prices(settings: Settings) -> PriceBook:
    if isinstance(settings.prices, str):
        return PriceBook.from_file(settings.prices, settings.deployments)
    return PriceBook(settings.prices, settings.deployments)


def latest_experimental(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``OTEL_SEMCONV_STABILITY_OPT_IN`` opts in to experimental GenAI names."""
    value = (os.environ if environ is None else environ).get(names.SEMCONV_OPT_IN_ENV, "")
    return names.SEMCONV_GEN_AI_LATEST_EXPERIMENTAL in (part.strip() for part in value.split(","))


def _tracing(settings: Settings, instruments: Instruments, tracer_provider: Any) -> tuple[Tracer, CallTelemetry]:
    tracer = trace.get_tracer("spendfuse", __version__, tracer_provider=tracer_provider)
    _stamp_runs(tracer_provider)
    calls = CallTelemetry(
        tracer,
        instruments,
        metric_user=settings.metric_user_attribute,
        experimental=latest_experimental(),
        metric_scopes=settings.metric_scopes,
    )
    return tracer, calls


def build_runtime(settings: Settings, tracer_provider: Any = None, meter_provider: Any = None) -> runtime.Runtime:
    # Every run reaches the local ledger, however spendfuse was started (see spendfuse/ledger/install.py).
    tracer_provider = attach_ledger(settings.ledger, tracer_provider)
    if is_private(tracer_provider):
        _follow_global_provider()
    prices = _prices(settings)
    instruments = _instruments(meter_provider)
    store = open_store(settings.store, timeout=settings.store_timeout)
    breaker = Breaker(settings, prices, instruments, store)
    tracer, calls = _tracing(settings, instruments, tracer_provider)
    return runtime.Runtime(settings, tracer, instruments, breaker, prices, calls, tracer_provider, meter_provider)


_following = False


def _follow_global_provider() -> None:
    """Once: when the application installs its own tracer provider after ``instrument()`` (while
    spendfuse traced with a provider of its own for the ledger), trace with the application's."""
    global _following
    with _lock:
        if not _following:
            _following = True
            wrapt.wrap_function_wrapper("opentelemetry.trace", "set_tracer_provider", _on_global_provider)


def _on_global_provider(wrapped: Any, _instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = wrapped(*args, **kwargs)
    try:
        active = runtime.current()
        provider = trace.get_tracer_provider()
        if active is None or not is_private(active.tracer_provider) or isinstance(provider, ProxyTracerProvider):
            return result
        # The same breaker and store (balances, leases): only where spans go changes.
        tracer_provider = attach_ledger(active.settings.ledger, provider)
        tracer, calls = _tracing(active.settings, active.instruments, tracer_provider)
        runtime.activate(replace(active, tracer=tracer, calls=calls, tracer_provider=tracer_provider))
        frameworks.install()
    except Exception:
        log_internal_error("following the application's tracer provider")
    return result


class SpendfuseInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Loaded by ``opentelemetry-instrument`` through the ``opentelemetry_instrumentor`` entry point."""

    def instrumentation_dependencies(self) -> Collection[str]:
        # Either SDK alone is enough; we patch whichever is importable, so no hard requirement.
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        tracer_provider = kwargs.pop("tracer_provider", None)
        meter_provider = kwargs.pop("meter_provider", None)
        settings = load_settings(kwargs)
        _activate(build_runtime(settings, tracer_provider, meter_provider))

    def _uninstrument(self, **kwargs: Any) -> None:
        _unpatch_all()
        previous = runtime.activate(None)
        if previous is not None:
            previous.breaker.close()


def _activate(new: runtime.Runtime) -> None:
    previous = runtime.activate(new)
    _patch_available(new.settings.suppress_sdk_spans)
    frameworks.install()  # spendfuse.frameworks: agent framework adapters (lazy, per import)
    # Calls in flight keep a reference to the old runtime and its store; it closes with them.
    del previous


def instrument(*, tracer_provider: Any = None, meter_provider: Any = None, **settings: Any) -> None:
    """Patch both SDKs and apply ``settings`` (over the SPENDFUSE_* environment and TOML file).

    Idempotent: calling it again re-applies the configuration without patching twice.
    """
    instrumentor = SpendfuseInstrumentor()
    with _lock:
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, **settings)
            return
        _activate(build_runtime(load_settings(settings), tracer_provider, meter_provider))


def uninstrument() -> None:
    """Restore every patched method; runs keep working, calls are no longer traced or budgeted."""
    instrumentor = SpendfuseInstrumentor()
    with _lock:
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        else:
            _unpatch_all()
            runtime.activate(None)
