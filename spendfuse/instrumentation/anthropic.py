"""Anthropic: which requests are model calls, and what to read from requests, responses, events.

Every Messages call shape (create, stream(), parse, beta.messages.*, with_raw_response,
with_streaming_response, Bedrock/Vertex clients sharing the base class) goes through
``SyncAPIClient.request`` / ``AsyncAPIClient.request`` with a ``/v1/messages`` URL, so routing by
URL there covers them all once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from spendfuse.budgets.usage import anthropic_usage
from spendfuse.instrumentation.provider import NoOmit, Router, Sdk
from spendfuse.instrumentation.records import RequestInfo, ResponseInfo, get, tool_signature
from spendfuse.telemetry import names

PROVIDER = names.PROVIDER_ANTHROPIC


def route(url: str) -> str | None:
    """The API a request URL belongs to, or None for calls we do not budget (count_tokens, batches)."""
    path = url.split("?", 1)[0].rstrip("/")
    if path.endswith("/v1/messages") or path == "/messages":
        return "messages"
    return None


def _block_groups(system: Any, tools: Any, messages: Any) -> list[Any]:
    groups = [system, tools]
    if isinstance(messages, list):
        groups.extend(message.get("content") for message in messages if isinstance(message, dict))
    return groups


def _has_cache_control(system: Any, tools: Any, messages: Any) -> tuple[bool, bool]:
    """Whether any block asks for caching (cache writes may be billed), and for a 1h TTL."""
    found = one_hour = False
    for group in _block_groups(system, tools, messages):
        if not isinstance(group, list):
            continue
        for block in group:
            marker = block.get("cache_control") if isinstance(block, dict) else None
            if marker:
                found = True
                one_hour = one_hour or (isinstance(marker, dict) and marker.get("ttl") == "1h")
    return found, one_hour


def extract_params(
    *,
    model: str | None = None,
    max_tokens: int | None = None,
    stream: bool | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    system: Any = None,
    tools: Any = None,
    messages: Any = None,
    cache_control: Any = None,
    speed: Any = None,
    **_kwargs: Any,
) -> RequestInfo:
    cache, one_hour = _has_cache_control(system, tools, messages)
    if cache_control:  # top-level automatic caching
        cache = True
        one_hour = one_hour or (isinstance(cache_control, dict) and cache_control.get("ttl") == "1h")
    return RequestInfo(
        model=str(model or "unknown"),
        max_tokens=max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else None,
        stream=bool(stream),
        temperature=temperature if isinstance(temperature, (int, float)) else None,
        top_p=top_p if isinstance(top_p, (int, float)) else None,
        max_tokens_key="max_tokens",
        cache_write=cache,
        cache_write_1h=one_hour,
        speed=speed if isinstance(speed, str) else None,
    )


def extract_request(api: str, body: Mapping[str, Any]) -> RequestInfo:
    return extract_params(**body)


def _length(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def extract_response(api: str, message: Any) -> ResponseInfo:
    info = ResponseInfo(
        response_id=get(message, "id"),
        response_model=get(message, "model"),
        usage=anthropic_usage(get(message, "usage")),
    )
    stop = get(message, "stop_reason")
    if stop:
        info.finish_reasons.append(str(stop))
    content = get(message, "content")
    if isinstance(content, list):
        # Without reported usage the output is estimated from its text, as for a stream.
        measure = info.usage is None
        for block in content:
            if get(block, "type") == "tool_use":
                signature = tool_signature(get(block, "name"), get(block, "input"))
                info.tool_calls.append(signature)
                if measure:
                    info.output_chars += len(signature)
            elif measure:
                info.output_chars += _length(get(block, "text")) + _length(get(block, "thinking"))
    return info


class StreamState:
    """Reads the raw Messages SSE events; only cheap attribute checks per event."""

    __slots__ = ("_tool_args", "_tool_name", "_usage_parts", "info")

    def __init__(self, api: str, capture: bool) -> None:
        self.info = ResponseInfo(output_text=[] if capture else None)
        self._usage_parts: dict[str, Any] = {}
        self._tool_name: str | None = None
        self._tool_args: list[str] = []

    def observer(self) -> Callable[[Any], None]:
        return self.observe

    def observe(self, event: Any) -> None:
        # The hot case, a text delta from the SDK's Stream (~90% of events), read with plain
        # attribute access (no builtin or helper call per field: those are most of the per-chunk
        # budget). Anything else (a dict event, another delta kind) raises or falls through.
        try:
            if event.type == "content_block_delta":
                text = event.delta.text
                if type(text) is str and text:  # ResponseInfo.add_text, inlined
                    info = self.info
                    info.output_chunks += 1
                    info.output_chars += len(text)
                    if info.output_text is not None:
                        info.output_text.append(text)
                    return
        except AttributeError:
            pass
        self._observe_any(event)

    def _observe_any(self, event: Any) -> None:
        kind = get(event, "type")
        if kind == "content_block_delta":
            delta = get(event, "delta")
            text = get(delta, "text")
            info = self.info
            info.output_chunks += 1
            if text and isinstance(text, str):
                info.add_text(text)
            elif self._tool_name is not None:
                partial = get(delta, "partial_json")
                if partial and isinstance(partial, str):
                    self._tool_args.append(partial)
                    info.output_chars += len(partial)
        elif kind == "message_start":
            message = get(event, "message")
            self.info.response_id = get(message, "id")
            self.info.response_model = get(message, "model")
            self._merge_usage(get(message, "usage"))
        elif kind == "content_block_start":
            block = get(event, "content_block")
            if get(block, "type") == "tool_use":
                self._tool_name = str(get(block, "name"))
                self._tool_args = []
        elif kind == "content_block_stop":
            if self._tool_name is not None:
                self.info.tool_calls.append(tool_signature(self._tool_name, "".join(self._tool_args) or "{}"))
                self._tool_name = None
        elif kind == "message_delta":
            stop = get(get(event, "delta"), "stop_reason")
            if stop:
                self.info.finish_reasons.append(str(stop))
            self._merge_usage(get(event, "usage"))

    def _merge_usage(self, usage: Any) -> None:
        if usage is None:
            return
        # An SDK model keeps its declared fields in __dict__ and undeclared ones the API sent in
        # __pydantic_extra__; getattr() of a field in neither (MessageDeltaUsage has no
        # cache_creation) raises and catches an AttributeError inside pydantic (~3 us).
        fields = usage if isinstance(usage, dict) else getattr(usage, "__dict__", None)
        extra = None if isinstance(usage, dict) else getattr(usage, "__pydantic_extra__", None)
        if isinstance(fields, dict) and isinstance(extra, dict) and extra:
            fields = {**fields, **extra}
        for key in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "cache_creation",
            "server_tool_use",
        ):
            value = fields.get(key) if isinstance(fields, dict) else get(usage, key)
            if value is not None:  # message_delta counts are cumulative: the latest wins
                self._usage_parts[key] = value

    def result(self) -> ResponseInfo:
        # Normalized once, here, rather than at message_start and again at message_delta.
        if self._usage_parts:
            self.info.usage = anthropic_usage(self._usage_parts)
        return self.info


class Anthropic:
    """The ``Provider`` for the Anthropic SDK; built once the SDK is imported.

    ``sdk=False`` reads the Messages API without the SDK (LiteLLM posts its bodies with its own
    HTTP client): no SDK types to check results against, no ``Omit`` sentinel to drop.
    """

    name = PROVIDER

    def __init__(self, *, sdk: bool = True) -> None:
        self.route = Router(route)
        self.omit_type: type = NoOmit
        self.stream_types: tuple[type, ...] = ()
        self.raw_response_types: tuple[type, ...] = ()
        if not sdk:
            return
        import anthropic
        from anthropic._response import BaseAPIResponse

        self.omit_type = getattr(anthropic, "Omit", NoOmit)
        self.stream_types = (anthropic.Stream, anthropic.AsyncStream)
        self.raw_response_types = (BaseAPIResponse,)
        try:  # releases before 1.0 answer with_raw_response with the legacy class
            from anthropic._legacy_response import LegacyAPIResponse
        except ImportError:
            return
        self.raw_response_types = (BaseAPIResponse, LegacyAPIResponse)

    def read_request(self, api: str, body: Mapping[str, Any]) -> RequestInfo:
        return extract_params(**body)

    def read_response(self, api: str, result: Any) -> ResponseInfo:
        return extract_response(api, result)

    def stream_reader(self, api: str, capture: bool) -> StreamState:
        return StreamState(api, capture)


SDK = Sdk(module="anthropic", base_client_module="anthropic._base_client", provider=Anthropic)
