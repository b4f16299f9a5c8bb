"""What the call path needs from a provider module, as a typed protocol.

``anthropic.py`` and ``openai.py`` each implement ``Provider`` (routing by URL, reading requests,
responses and stream events) and describe their SDK with an ``Sdk`` record; the instrumentor patches
the SDK's base client and builds the provider once the SDK is imported, so the SDK classes it
checks results against (``stream_types``, ``raw_response_types``) are resolved once, not per call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from spendfuse.instrumentation.records import RequestInfo, ResponseInfo


class StreamReader(Protocol):
    """The observed state of one stream: fed every item, asked for the result once at the end."""

    def observer(self) -> Callable[[Any], None]:
        """The per-item handler (bound once per stream: one Python call per item fewer)."""
        ...

    def result(self) -> ResponseInfo: ...


class Provider(Protocol):
    name: str
    stream_types: tuple[type, ...]
    raw_response_types: tuple[type, ...]
    omit_type: type  # the SDK's ``Omit`` sentinel, dropped from the body as the SDK does

    def route(self, url: str) -> str | None:
        """The API a request URL belongs to, or None for requests that are not model calls."""
        ...

    def read_request(self, api: str, body: Mapping[str, Any]) -> RequestInfo: ...

    def read_response(self, api: str, result: Any) -> ResponseInfo:
        """From an SDK response object or its decoded JSON body (raw responses)."""
        ...

    def stream_reader(self, api: str, capture: bool) -> StreamReader: ...


class NoOmit:
    """Stands for the ``Omit`` class of an SDK release that has none: no value is of this type."""


@dataclass(frozen=True, slots=True)
class Sdk:
    """Where a provider's SDK lives and how to build its ``Provider`` once the SDK is imported."""

    module: str
    base_client_module: str
    provider: Callable[[], Provider]


class Router:
    """``route`` memoized per URL string: the SDKs send a few fixed paths, so each is parsed once."""

    __slots__ = ("_cache", "_route")

    def __init__(self, route: Callable[[str], str | None]) -> None:
        self._route = route
        self._cache: dict[str, str | None] = {}

    def __call__(self, url: str) -> str | None:
        try:
            return self._cache[url]
        except KeyError:
            pass
        api = self._route(url)
        if len(self._cache) >= 256:  # URLs with ids in them (never model calls): bound the memory
            self._cache.clear()
        self._cache[url] = api
        return api
