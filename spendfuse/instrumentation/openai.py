"""OpenAI: Chat Completions and Responses, read from requests, responses and stream events.

``chat.completions.create/parse/stream``, ``responses.create/parse/stream``, raw and streaming
response wrappers, and the Azure client (same base class) all reach
``SyncAPIClient.request`` / ``AsyncAPIClient.request``; the ``*.stream`` helpers call ``create``
internally, which the re-entry guard in ``wrappers`` makes one call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from spendfuse.budgets.usage import openai_chat_usage, openai_responses_usage
from spendfuse.instrumentation.provider import NoOmit, Router, Sdk
from spendfuse.instrumentation.records import RequestInfo, ResponseInfo, get, items, tool_signature
from spendfuse.telemetry import names

PROVIDER = names.PROVIDER_OPENAI


def route(url: str) -> str | None:
    path = url.split("?", 1)[0].rstrip("/")
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/responses"):
        return "responses"
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _length(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def _number(value: Any) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _reasoning(usage: Any, details_name: str) -> int | None:
    """Reasoning tokens when reported and non-zero; already counted in the output tokens."""
    value = get(get(usage, details_name), "reasoning_tokens")
    return value if type(value) is int and value > 0 else None


def extract_chat_params(
    *,
    model: str | None = None,
    max_completion_tokens: int | None = None,
    max_tokens: int | None = None,
    stream: bool | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    n: int | None = None,
    service_tier: Any = None,
    **_kwargs: Any,
) -> RequestInfo:
    limit, key = _int(max_completion_tokens), "max_completion_tokens"
    if limit is None and _int(max_tokens) is not None:
        limit, key = _int(max_tokens), "max_tokens"
    return RequestInfo(
        model=str(model or "unknown"),
        max_tokens=limit,
        stream=bool(stream),
        temperature=_number(temperature),
        top_p=_number(top_p),
        max_tokens_key=key,
        choices=_int(n) or 1,
        service_tier=service_tier if isinstance(service_tier, str) else None,
    )


def extract_responses_params(
    *,
    model: str | None = None,
    max_output_tokens: int | None = None,
    stream: bool | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    service_tier: Any = None,
    **_kwargs: Any,
) -> RequestInfo:
    return RequestInfo(
        model=str(model or "unknown"),
        max_tokens=_int(max_output_tokens),
        stream=bool(stream),
        temperature=_number(temperature),
        top_p=_number(top_p),
        max_tokens_key="max_output_tokens",
        service_tier=service_tier if isinstance(service_tier, str) else None,
    )


def extract_request(api: str, body: Mapping[str, Any]) -> RequestInfo:
    if api == "chat":
        return extract_chat_params(**body)
    return extract_responses_params(**body)


def _chat_response(completion: Any) -> ResponseInfo:
    usage = get(completion, "usage")
    info = ResponseInfo(
        response_id=get(completion, "id"),
        response_model=get(completion, "model"),
        usage=openai_chat_usage(usage),
        reasoning_tokens=_reasoning(usage, "completion_tokens_details"),
    )
    measure = info.usage is None  # without reported usage the output is estimated from its text
    for choice in items(get(completion, "choices")):
        reason = get(choice, "finish_reason")
        if reason:
            info.finish_reasons.append(str(reason))
        message = get(choice, "message")
        if measure:
            info.output_chars += _length(get(message, "content")) + _length(get(message, "refusal"))
        for call in items(get(message, "tool_calls")):
            function = get(call, "function")
            if function is not None:
                arguments = get(function, "arguments")
                info.tool_calls.append(tool_signature(get(function, "name"), arguments))
                if measure:
                    info.output_chars += _length(arguments)
    return info


def _responses_response(response: Any) -> ResponseInfo:
    usage = get(response, "usage")
    info = ResponseInfo(
        response_id=get(response, "id"),
        response_model=get(response, "model"),
        usage=openai_responses_usage(usage),
        reasoning_tokens=_reasoning(usage, "output_tokens_details"),
    )
    incomplete = get(get(response, "incomplete_details"), "reason")
    status = get(response, "status")
    if incomplete or status:
        info.finish_reasons.append(str(incomplete or status))
    measure = info.usage is None  # without reported usage the output is estimated from its text
    searches = files = code = 0
    for item in items(get(response, "output")):
        kind = get(item, "type")
        if kind == "web_search_call":  # built-in tools, billed per call on top of tokens
            searches += 1
        elif kind == "file_search_call":
            files += 1
        elif kind == "code_interpreter_call":
            code += 1
        elif kind == "function_call":
            arguments = get(item, "arguments")
            info.tool_calls.append(tool_signature(get(item, "name"), arguments))
            if measure:
                info.output_chars += _length(arguments)
        elif measure and kind == "message":
            for part in items(get(item, "content")):
                info.output_chars += _length(get(part, "text")) + _length(get(part, "refusal"))
    if info.usage is not None and (searches or files or code):
        info.usage.web_search_uses = searches
        info.usage.file_search_uses = files
        info.usage.code_execution_uses = code
    return info


def extract_response(api: str, result: Any) -> ResponseInfo:
    return _chat_response(result) if api == "chat" else _responses_response(result)


class StreamState:
    """Reads chat chunks or Responses events; only cheap attribute checks per item."""

    __slots__ = ("_api", "_tools", "info")

    def __init__(self, api: str, capture: bool) -> None:
        self._api = api
        self.info = ResponseInfo(output_text=[] if capture else None)
        self._tools: dict[int, list[str]] = {}

    def observer(self) -> Callable[[Any], None]:
        """The handler ``observe`` would dispatch to, for a caller that observes many items."""
        return self._observe_chunk if self._api == "chat" else self._observe_event

    def observe(self, item: Any) -> None:
        if self._api == "chat":
            self._observe_chunk(item)
        else:
            self._observe_event(item)

    def _observe_chunk(self, chunk: Any) -> None:
        # The hot case, a text-only delta chunk from the SDK's Stream, read with plain attribute
        # access (no builtin or helper call per field: those are most of the per-chunk budget).
        # Anything else (a dict chunk, tool calls, the final or usage chunk) falls through.
        try:
            if chunk.usage is None and self.info.response_id is not None:
                choices = chunk.choices
                if type(choices) is list and len(choices) == 1:
                    choice = choices[0]
                    delta = choice.delta
                    text = delta.content
                    if type(text) is str and text and delta.tool_calls is None and choice.finish_reason is None:
                        info = self.info  # ResponseInfo.add_text, inlined
                        info.output_chunks += 1
                        info.output_chars += len(text)
                        if info.output_text is not None:
                            info.output_text.append(text)
                        return
        except AttributeError:
            pass
        self._observe_any_chunk(chunk)

    def _observe_any_chunk(self, chunk: Any) -> None:
        info = self.info
        info.output_chunks += 1
        choices = items(get(chunk, "choices"))
        if choices:
            choice = choices[0]
            delta = get(choice, "delta")
            text = get(delta, "content")
            if text and isinstance(text, str):
                info.add_text(text)
            calls = items(get(delta, "tool_calls"))
            if calls:
                self._observe_tool_deltas(calls)
            reason = get(choice, "finish_reason")
            if reason:
                info.finish_reasons.append(str(reason))
        if info.response_id is None:
            info.response_id = get(chunk, "id")
            info.response_model = get(chunk, "model")
        usage = get(chunk, "usage")
        if usage is not None:
            info.usage = openai_chat_usage(usage)
            info.reasoning_tokens = _reasoning(usage, "completion_tokens_details")

    def _observe_tool_deltas(self, calls: Any) -> None:
        for call in calls:
            index = get(call, "index")
            if not isinstance(index, int):
                index = 0
            function = get(call, "function")
            parts = self._tools.get(index)
            if parts is None:
                parts = self._tools[index] = [str(get(function, "name") or ""), ""]
            arguments = get(function, "arguments")
            if arguments and isinstance(arguments, str):
                parts[1] += arguments
                self.info.output_chars += len(arguments)

    def _observe_event(self, event: Any) -> None:
        kind = get(event, "type")
        info = self.info
        if kind == "response.output_text.delta":
            text = get(event, "delta")
            info.output_chunks += 1
            if text and isinstance(text, str):
                info.add_text(text)
        elif kind == "response.function_call_arguments.delta":
            text = get(event, "delta")
            if text and isinstance(text, str):
                info.output_chars += len(text)
        elif kind == "response.output_item.done":
            item = get(event, "item")
            if get(item, "type") == "function_call":
                info.tool_calls.append(tool_signature(get(item, "name"), get(item, "arguments")))
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            final = _responses_response(get(event, "response"))
            info.usage = final.usage
            info.reasoning_tokens = final.reasoning_tokens
            info.finish_reasons = final.finish_reasons
            info.response_id = final.response_id or info.response_id
            info.response_model = final.response_model or info.response_model
        elif kind == "response.created":
            response = get(event, "response")
            info.response_id = get(response, "id")
            info.response_model = get(response, "model")

    def result(self) -> ResponseInfo:
        for name, arguments in self._tools.values():
            self.info.tool_calls.append(tool_signature(name, arguments or "{}"))
        self._tools = {}
        return self.info


class OpenAI:
    """The ``Provider`` for the OpenAI SDK (Azure clients included); built once the SDK is imported."""

    name = PROVIDER

    def __init__(self) -> None:
        import openai
        from openai._legacy_response import LegacyAPIResponse
        from openai._response import BaseAPIResponse

        self.route = Router(route)
        self.omit_type: type = getattr(openai, "Omit", NoOmit)
        self.stream_types: tuple[type, ...] = (openai.Stream, openai.AsyncStream)
        self.raw_response_types: tuple[type, ...] = (BaseAPIResponse, LegacyAPIResponse)

    def read_request(self, api: str, body: Mapping[str, Any]) -> RequestInfo:
        return extract_request(api, body)

    def read_response(self, api: str, result: Any) -> ResponseInfo:
        return extract_response(api, result)

    def stream_reader(self, api: str, capture: bool) -> StreamState:
        return StreamState(api, capture)


SDK = Sdk(module="openai", base_client_module="openai._base_client", provider=OpenAI)
