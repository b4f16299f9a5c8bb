"""One model call, from admission to settlement: the logic both sync and async shells share.

``begin`` reads the request, starts the ``chat {model}`` span and asks the breaker to admit the
call; ``ModelCall.on_result`` settles a JSON response at once or hands back a stream proxy that
settles when the stream ends; ``ModelCall.on_error`` settles a failed call. Everything here catches
its own errors: only the breaker's deliberate errors ever reach the caller.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Status, StatusCode

from spendfuse._log import log_internal_error
from spendfuse.budgets.breaker import Admission, CallRequest
from spendfuse.budgets.estimate import estimate_input_tokens
from spendfuse.budgets.usage import TokenUsage
from spendfuse.errors import BudgetExceeded, BudgetStoreUnavailable, UnpricedModelError
from spendfuse.instrumentation.records import RequestInfo, ResponseInfo, get
from spendfuse.instrumentation.streams import watch_raw_response, watch_stream
from spendfuse.runs.run import Run, current_run
from spendfuse.runtime import Runtime
from spendfuse.telemetry import names
from spendfuse.telemetry.callspan import CallSpan
from spendfuse.telemetry.instruments import CallMeasurements

DELIBERATE = (BudgetExceeded, UnpricedModelError, BudgetStoreUnavailable)
CONTENT_LIMIT = 16_384  # characters of captured message content per attribute


@dataclass(frozen=True, slots=True)
class Provider:
    """A provider module's functions, resolved once at instrument time."""

    name: str
    route: Callable[[str], str | None]
    extract_request: Callable[[str, Mapping[str, Any]], RequestInfo]
    extract_response: Callable[[str, Any], ResponseInfo]
    stream_state: Callable[[str, bool], Any]
    stream_types: tuple[type, ...]
    raw_response_types: tuple[type, ...]


def estimate_output_tokens(info: ResponseInfo) -> int:
    # No tokenizer per chunk: at least one token per delta, and ~3 characters per token (an
    # over-estimate for prose, about right for code), whichever is larger.
    return max(info.output_chunks, (info.output_chars + 2) // 3)


_servers: dict[int, tuple[Any, str | None, int | None]] = {}  # id(base_url) -> (base_url, host, port)


def _server(instance: Any) -> tuple[str | None, int | None]:
    # A client's base URL rarely changes, and reading host and port from an httpx URL re-derives
    # them on every access: remember them per URL object (the object itself is kept and compared,
    # so a recycled id cannot alias).
    try:
        url = instance.base_url
        cached = _servers.get(id(url))
        if cached is not None and cached[0] is url:
            return cached[1], cached[2]
        host, port = url.host, url.port
        if len(_servers) >= 64:
            _servers.clear()
        _servers[id(url)] = (url, host, port)
        return host, port
    except Exception:
        return None, None


def _jsonable(value: Any) -> str:
    def default(obj: Any) -> Any:
        dump = getattr(obj, "model_dump", None)
        return dump(mode="json") if callable(dump) else str(obj)

    try:
        return json.dumps(value, default=default, ensure_ascii=False)[:CONTENT_LIMIT]
    except Exception:
        return ""


def begin(runtime: Runtime, provider: Provider, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
          ) -> ModelCall | None:
    """Start tracing and budgeting one call, or None when it is not a model call we handle."""
    try:
        options: Any = args[1] if len(args) > 1 else kwargs["options"]
        api = provider.route(options.url)
        if api is None:
            return None
        body = options.json_data
        if not isinstance(body, Mapping):
            return None
        request = provider.extract_request(api, body)
        stream = bool(kwargs.get("stream", False)) or request.stream
        the_run = current_run()
        span = _start_span(runtime, provider, instance, request, stream, the_run, body)
    except Exception:
        log_internal_error("reading a request")
        return None
    call = ModelCall(runtime, provider, api, request, body, span, the_run, stream)
    try:
        call_request = CallRequest(
            provider=provider.name,
            api=api,
            model=request.model,
            body=body,
            max_tokens=request.max_tokens,
            choices=request.choices,
            cache_write=request.cache_write,
            cache_write_1h=request.cache_write_1h,
            service_tier=request.service_tier,
            speed=request.speed,
        )
        admission = runtime.breaker.admit(call_request, the_run, span)
    except DELIBERATE as error:
        call.refused(error)
        raise
    except Exception:
        log_internal_error("admitting a call")
        return call
    call.admission = admission
    call.admitted(options)
    return call


def _start_span(
    runtime: Runtime,
    provider: Provider,
    instance: Any,
    request: RequestInfo,
    stream: bool,
    the_run: Run | None,
    body: Mapping[str, Any],
) -> CallSpan:
    attributes: dict[str, Any] = {
        names.GEN_AI_OPERATION_NAME: names.OPERATION_CHAT,
        names.GEN_AI_PROVIDER_NAME: provider.name,
        names.GEN_AI_REQUEST_MODEL: request.model,
        names.GEN_AI_REQUEST_STREAM: stream,
    }
    if request.max_tokens is not None:
        attributes[names.GEN_AI_REQUEST_MAX_TOKENS] = request.max_tokens
    if request.temperature is not None:
        attributes[names.GEN_AI_REQUEST_TEMPERATURE] = float(request.temperature)
    if request.top_p is not None:
        attributes[names.GEN_AI_REQUEST_TOP_P] = float(request.top_p)
    host, port = _server(instance)
    if host:
        attributes[names.SERVER_ADDRESS] = host
    if port:
        attributes[names.SERVER_PORT] = port
    if the_run is not None:
        attributes[names.RUN_ID] = the_run.run_id
        if the_run.user_id is not None:
            attributes[names.USER_ID] = the_run.user_id
    if runtime.settings.capture_content:
        system = body.get("system") if "system" in body else body.get("instructions")
        if system:
            attributes[names.GEN_AI_SYSTEM_INSTRUCTIONS] = _jsonable(system)
        attributes[names.GEN_AI_INPUT_MESSAGES] = _jsonable(body.get("messages") or body.get("input"))
    return CallSpan(runtime.tracer, runtime.emit, f"{names.OPERATION_CHAT} {request.model}", attributes)


class ModelCall:
    """State of one admitted call. ``finish`` runs exactly once, whatever path ends the call."""

    __slots__ = (
        "_done",
        "_first_chunk_at",
        "_lock",
        "admission",
        "api",
        "body",
        "provider",
        "request",
        "run",
        "runtime",
        "span",
        "started",
        "stream",
    )

    def __init__(
        self,
        runtime: Runtime,
        provider: Provider,
        api: str,
        request: RequestInfo,
        body: Mapping[str, Any],
        span: CallSpan,
        the_run: Run | None,
        stream: bool,
    ) -> None:
        self.runtime = runtime
        self.provider = provider
        self.api = api
        self.request = request
        self.body = body
        self.span = span
        self.run = the_run
        self.stream = stream
        self.admission: Admission | None = None
        self.started = time.perf_counter()
        self._first_chunk_at: float | None = None
        self._done = False
        self._lock = threading.Lock()

    # -- admission outcomes ----------------------------------------------------------------

    def refused(self, error: Exception) -> None:
        """The breaker refused the call: nothing was reserved; close the span as an error."""
        try:
            span = self.span
            if not isinstance(error, BudgetExceeded):  # the breaker already annotated trips
                span.set_attribute(names.ERROR_TYPE, type(error).__qualname__)
                span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
            span.end()
        except Exception:
            log_internal_error("closing a refused call")

    def admitted(self, options: Any) -> None:
        admission = self.admission
        if admission is None:
            return
        try:
            if admission.rates is not None and admission.input_estimate >= 0:
                self.span.set_attribute(names.RESERVED_USD, admission.reserved_usd / 1_000_000)
            if admission.clamped_to is not None and self.request.max_tokens_key:
                # Lower max_tokens in the request itself so the provider cannot exceed the fit.
                options.json_data[self.request.max_tokens_key] = admission.clamped_to
                self.span.set_attribute(names.CLAMPED_MAX_TOKENS, admission.clamped_to)
            if admission.fail_open:
                self.span.set_attribute(names.STORE_FAIL_OPEN, True)
        except Exception:
            log_internal_error("recording an admission")

    # -- results ---------------------------------------------------------------------------

    def on_result(self, result: Any) -> Any:
        """Return what the SDK returned, or a proxy of it that settles when it is consumed."""
        try:
            if isinstance(result, self.provider.stream_types):
                return watch_stream(result, self)
            if isinstance(result, self.provider.raw_response_types):
                return self._raw(result)
            info = self.provider.extract_response(self.api, result)
        except Exception:
            log_internal_error("reading a response")
            self.finish(None, complete=False, reason="unreadable")
            return result
        self.capture_output(result)
        self.finish(info)
        return result

    def _raw(self, response: Any) -> Any:
        http_response = response.http_response
        content = getattr(http_response, "_content", None)
        if content is not None and not self.stream:
            # with_raw_response: the body is already read; usage comes from its JSON.
            try:
                info = self.provider.extract_response(self.api, json.loads(content))
            except ValueError:
                self.finish(None, complete=False, reason="unreadable")
                return response
            self.finish(info)
            return response
        return watch_raw_response(response, self)

    def on_parsed(self, parsed: Any) -> Any:
        """A raw response's ``parse()`` result: a stream to proxy or a final object."""
        return self.on_result(parsed)

    def on_error(self, error: BaseException) -> None:
        """The SDK raised before returning: the call was dispatched but nothing was billed.

        Except a bare ``JSONDecodeError``: the SDKs parse error bodies leniently, so it means a
        success body they could not read. It was billed all the same, as an unreadable raw body is
        (see ``_raw``): the reserved worst case is charged rather than nothing.
        """
        reason = "unreadable" if isinstance(error, json.JSONDecodeError) else "error"
        self.finish(None, complete=False, error=error, reason=reason)

    def first_chunk(self) -> None:
        if self._first_chunk_at is None:
            self._first_chunk_at = time.perf_counter()

    def capture_output(self, result: Any) -> None:
        if not self.runtime.settings.capture_content:
            return
        try:
            output = get(result, "content") or get(result, "choices") or get(result, "output")
            self.span.set_attribute(names.GEN_AI_OUTPUT_MESSAGES, _jsonable(output))
        except Exception:
            log_internal_error("capturing output")

    # -- settlement ------------------------------------------------------------------------

    def finish(
        self,
        info: ResponseInfo | None,
        *,
        complete: bool = True,
        error: BaseException | None = None,
        reason: str = "complete",
    ) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        try:
            self._finish(info, complete, error, reason)
        except Exception:
            log_internal_error("settling a call")

    def _finish(self, info: ResponseInfo | None, complete: bool, error: BaseException | None, reason: str
                ) -> None:
        runtime, span, admission = self.runtime, self.span, self.admission
        usage, estimated = self._usage(info, complete, reason)
        request = self.request
        rates = admission.rates if admission is not None else runtime.prices.rates(
            self.provider.name, request.model, service_tier=request.service_tier, speed=request.speed
        )
        cost: int | None
        if usage is None:
            cost = 0
        elif rates is None:
            cost = None
        else:
            cost = runtime.prices.cost_micros(rates, usage)
        if admission is not None:
            runtime.breaker.settle(admission, usage, cost)
        the_run = self.run
        if info is not None and the_run is not None:
            self._remember(the_run, info, usage, estimated)

        if info is not None:
            if info.response_id:
                span.set_attribute(names.GEN_AI_RESPONSE_ID, str(info.response_id))
            if info.response_model:
                span.set_attribute(names.GEN_AI_RESPONSE_MODEL, str(info.response_model))
            if info.finish_reasons:
                span.set_attribute(names.GEN_AI_RESPONSE_FINISH_REASONS, info.finish_reasons)
            if info.output_text:
                span.set_attribute(names.GEN_AI_OUTPUT_MESSAGES, "".join(info.output_text)[:CONTENT_LIMIT])
        if usage is not None:
            span.set_attribute(names.GEN_AI_USAGE_INPUT_TOKENS, usage.input_tokens)
            span.set_attribute(names.GEN_AI_USAGE_OUTPUT_TOKENS, usage.output_tokens)
            if usage.cache_read_tokens:
                span.set_attribute(names.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, usage.cache_read_tokens)
            if usage.cache_write_tokens:
                span.set_attribute(names.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, usage.cache_write_tokens)
        if estimated:
            span.set_attribute(names.USAGE_ESTIMATED, True)
        if cost is None:
            span.set_attribute(names.COST_UNKNOWN, True)
        else:
            span.set_attribute(names.COST_USD, cost / 1_000_000)
        if self.stream:
            span.set_attribute(names.STREAM_END, reason)
        if error is not None:
            span.set_attribute(names.ERROR_TYPE, type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
        span.then = self._measurements(info, usage, cost, error).record
        span.end()

    def _usage(self, info: ResponseInfo | None, complete: bool, reason: str) -> tuple[TokenUsage | None, bool]:
        """Reported usage, or an estimate of what was received when the provider sent none."""
        admission = self.admission
        input_estimate = admission.input_estimate if admission is not None else 0
        if input_estimate < 0 and (info is None or info.usage is None or not complete):
            # Telemetry-only calls skip the estimate at admission; the rare call without reported
            # usage makes it here.
            memo = self.run.memo if self.run is not None else None
            input_estimate = estimate_input_tokens(self.provider.name, self.api, self.request.model, self.body, memo)
        if info is None:
            if reason == "unreadable" and admission is not None:
                # A body we could not read may still have been billed in full: charge the worst case.
                return TokenUsage(input_tokens=input_estimate, output_tokens=admission.max_output), True
            return None, False
        usage = info.usage
        received = estimate_output_tokens(info)
        if admission is not None and received > admission.max_output:
            # The provider never returns more than the request's output cap: an estimate above it
            # would charge more than the reserved worst case, past the limit that admitted the call.
            received = admission.max_output
        if usage is not None and complete:
            return usage, False
        if usage is None:
            if not complete and received == 0 and reason == "error":
                return None, False
            return TokenUsage(input_tokens=input_estimate, output_tokens=received), True
        if usage.output_tokens < received:  # stream cut before the final usage arrived
            usage.output_tokens = received
            return usage, True
        return usage, not complete

    def _remember(self, the_run: Run, info: ResponseInfo, usage: TokenUsage | None, estimated: bool) -> None:
        if info.tool_calls:
            for scope_run in the_run.chain:
                with scope_run.lock:
                    requests = scope_run.tool_requests
                    for signature in info.tool_calls:
                        requests[signature] = requests.get(signature, 0) + 1
        memo = the_run.memo
        if memo is not None and usage is not None and not estimated:
            memo.remember(self.api, self.body, usage.input_tokens)

    def _measurements(
        self, info: ResponseInfo | None, usage: TokenUsage | None, cost: int | None, error: BaseException | None
    ) -> CallMeasurements:
        first_chunk_at, started, the_run = self._first_chunk_at, self.started, self.run
        runtime = self.runtime
        user_id = None
        if runtime.settings.metric_user_attribute and the_run is not None:
            user_id = the_run.user_id
        return CallMeasurements(
            instruments=runtime.instruments,
            provider=self.provider.name,
            request_model=self.request.model,
            response_model=str(info.response_model) if info is not None and info.response_model else None,
            duration=time.perf_counter() - started,
            time_to_first_chunk=None if first_chunk_at is None else first_chunk_at - started,
            input_tokens=usage.input_tokens if usage is not None else None,
            output_tokens=usage.output_tokens if usage is not None else None,
            cost_usd=cost / 1_000_000 if cost else 0.0,
            error_type=type(error).__qualname__ if error is not None else None,
            user_id=user_id,
        )
