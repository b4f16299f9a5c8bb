"""One model call, walked once, forward: read the request, admit, dispatch, settle, emit.

``begin`` reads the request as the SDK will send it (``request``), starts the ``chat {model}``
span and asks the breaker to admit the call; the shells in ``wrappers`` make the span current
while the SDK sends it; ``ModelCall.on_result`` settles a JSON response at once or watches a
stream (``streams``) that settles when it ends; ``ModelCall.on_error`` settles a failed call.
Money is decided in ``budgets.settlement``; spans and metrics are written by
``telemetry.calls``. Everything here catches its own errors: only the breaker's deliberate errors
ever reach the caller.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, Status, StatusCode

from spendfuse._log import log_internal_error
from spendfuse.budgets.breaker import Admission, CallRequest
from spendfuse.budgets.settlement import UNANSWERED, Answer, Settlement, settle, unanswered_charge
from spendfuse.budgets.usage import TokenUsage
from spendfuse.errors import BudgetExceeded, BudgetStoreUnavailable, UnpricedModelError
from spendfuse.instrumentation import attempts, background
from spendfuse.instrumentation.attributes import content_attributes, jsonable, server_of
from spendfuse.instrumentation.provider import Provider
from spendfuse.instrumentation.records import RequestInfo, ResponseInfo, get
from spendfuse.instrumentation.request import sent_body, write_max_tokens
from spendfuse.instrumentation.server_tools import tool_uses
from spendfuse.instrumentation.stream_usage import ask_for_usage, usage_only_chunk
from spendfuse.instrumentation.streams import watch_raw_response, watch_stream
from spendfuse.runs.run import Run, current_run
from spendfuse.runtime import Runtime
from spendfuse.telemetry import names

DELIBERATE = (BudgetExceeded, UnpricedModelError, BudgetStoreUnavailable)


def estimate_output_tokens(info: ResponseInfo) -> int:
    # No tokenizer per chunk: at least one token per delta, and ~3 characters per token (an
    # over-estimate for prose, about right for code), whichever is larger.
    return max(info.output_chunks, (info.output_chars + 2) // 3)


def begin(
    runtime: Runtime, provider: Provider, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> ModelCall | background.Follower | None:
    """Start tracing and budgeting one call, or None when it is not a model call we handle."""
    try:
        options: Any = args[1] if len(args) > 1 else kwargs["options"]
        api = provider.route(options.url)
        if api is None:
            # Not a model call; perhaps a retrieve, poll or cancel of a held background response.
            return background.follower(provider, options) if background.waiting() else None
        body = sent_body(options, provider.omit_type)
        if body is None:
            return None
        request = provider.read_request(api, body)
        stream = bool(kwargs.get("stream", False)) or request.stream
        server = server_of(instance)
        settings = runtime.settings
        # Exact usage for chat streams that did not ask for it, on hosts known to accept the ask.
        hide_usage = (
            stream and api == "chat" and settings.stream_usage and provider.name == "openai"
            and ask_for_usage(options, body, server[0], settings.stream_usage_hosts)
        )  # fmt: skip
        the_run = current_run()
        span = runtime.calls.start(
            provider.name, request, stream, server,
            the_run.run_id if the_run is not None else None,
            the_run.user_id if the_run is not None else None,
            content_attributes(body) if runtime.settings.capture_content else None,
        )  # fmt: skip
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
            tool_uses=tool_uses(provider.name, api, body, settings.server_tool_default_uses),
        )
    except Exception:
        log_internal_error("reading a request")
        return None
    call = ModelCall(runtime, provider, api, request, call_request, span, the_run, stream)
    call.hide_usage = hide_usage
    try:
        admission = runtime.breaker.admit(call_request, the_run, span)
    except DELIBERATE as error:
        call.refused(error)
        raise
    except Exception as exc:
        log_internal_error("admitting a call")
        if runtime.settings.store_failure == "closed" and runtime.breaker.may_limit(the_run):
            # A budget applies and its check failed: an unchecked call could overrun it, so the
            # failure counts as the store outage policy says (fail closed by default).
            unchecked = BudgetStoreUnavailable(
                f"spendfuse could not check this call against its budgets ({type(exc).__name__}); refusing "
                "it because store_failure='closed' (set SPENDFUSE_STORE_FAILURE=open to admit calls then)"
            )
            call.refused(unchecked)
            raise unchecked from exc
        return call
    call.admitted(admission, options)
    return call


class ModelCall:
    """State of one admitted call. ``finish`` runs exactly once, whatever path ends the call."""

    __slots__ = (
        "_charged",
        "_done",
        "_first_chunk_at",
        "_lock",
        "admission",
        "api",
        "attempts",
        "call_request",
        "hide_usage",
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
        call_request: CallRequest,
        span: Span,
        the_run: Run | None,
        stream: bool,
    ) -> None:
        self.runtime = runtime
        self.provider = provider
        self.api = api
        self.request = request
        self.call_request = call_request
        self.span = span
        self.run = the_run
        self.stream = stream
        self.admission: Admission | None = None
        self.hide_usage = False  # we asked for the stream's usage: withhold its chunk (stream_usage)
        self.started = time.perf_counter()
        self._first_chunk_at: float | None = None
        self._done = False
        self.attempts = 1  # requests sent for this call: the SDK's retries included
        # What the attempts before the current one were charged (sent, never answered), or None.
        self._charged: Settlement | None = None
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

    def admitted(self, admission: Admission, options: Any) -> None:
        self.admission = admission
        try:
            attributes: dict[str, Any] = {}
            if admission.rates is not None and admission.input_estimate >= 0:
                attributes[names.RESERVED_USD] = admission.reserved_usd / 1_000_000
            if admission.clamped_to is not None and self.request.max_tokens_key:
                # Lower max_tokens in the request itself so the provider cannot exceed the fit.
                write_max_tokens(options, self.request.max_tokens_key, admission.clamped_to)
                attributes[names.CLAMPED_MAX_TOKENS] = admission.clamped_to
            if admission.fail_open:
                attributes[names.STORE_FAIL_OPEN] = True
            if attributes:
                self.span.set_attributes(attributes)
        except Exception:
            log_internal_error("recording an admission")

    # -- dispatch --------------------------------------------------------------------------

    def enter(self) -> object:
        """Make the call span current while the SDK sends the request; the token for ``leave``."""
        if self.span is INVALID_SPAN:  # a no-op tracer: nothing could be a child of it
            return None
        try:
            return otel_context.attach(trace.set_span_in_context(self.span))
        except Exception:
            log_internal_error("entering a call span")
            return None

    @staticmethod
    def leave(token: object) -> None:
        """Detach what ``enter`` attached, before control returns to the caller."""
        if token is None:
            return
        try:
            otel_context.detach(token)  # type: ignore[arg-type]
        except Exception:
            log_internal_error("leaving a call span")

    # -- the SDK's retries (see ``attempts``) -----------------------------------------------

    def retrying(self, outcome: str) -> None:
        """The SDK is about to retry: close the attempt that failed (``outcome``), admit the next.

        An attempt answered with an error status, or never sent, costs nothing; one sent and never
        answered is charged at its reservation unless ``unanswered="released"``. Raises
        ``BudgetExceeded`` when the next attempt no longer fits (the call is then over: the span is
        ended by ``on_error``, which the exception reaches through the SDK and the shell).
        """
        usage: TokenUsage | None = None
        cost: int | None = 0
        previous = self.admission
        try:
            if outcome == attempts.UNANSWERED and self.runtime.settings.unanswered == "reserved":
                memo = self.run.memo if self.run is not None else None
                usage, cost = unanswered_charge(self.runtime.prices, self.call_request, previous, memo)
        except Exception:
            log_internal_error("pricing an unanswered attempt")
            usage, cost = None, 0
        try:
            if previous is not None:
                self.admission = self.runtime.breaker.readmit(self.call_request, previous, usage, cost, self.span)
        except DELIBERATE:
            self.admission = None  # closed by the breaker, turn included
            self._charge(usage, cost)
            raise
        except Exception:
            log_internal_error("admitting a retry")
        self._charge(usage, cost)
        self.attempts += 1

    def _charge(self, usage: TokenUsage | None, cost: int | None) -> None:
        if usage is None:
            return
        self._charged = _add(self._charged, Settlement(usage, cost, True, UNANSWERED))

    # -- results ---------------------------------------------------------------------------

    def on_result(self, result: Any) -> Any:
        """Return what the SDK returned, or the same object watched until it is consumed."""
        try:
            provider = self.provider
            if isinstance(result, provider.stream_types):
                reader = provider.stream_reader(self.api, self.runtime.settings.capture_content)
                return watch_stream(result, self, reader, usage_only_chunk if self.hide_usage else None)
            if isinstance(result, provider.raw_response_types):
                return self._raw(result)
            info = provider.read_response(self.api, result)
        except Exception:
            log_internal_error("reading a response")
            self.finish(None, complete=False, reason="unreadable")
            return result
        self.capture_output(result)
        self.answered(info)
        return result

    def answered(self, info: ResponseInfo) -> None:
        """Settle a whole response now, or hold a queued background response until it is final."""
        try:
            if (
                info.usage is None and self.api == "responses" and info.response_id
                and info.finish_reasons and info.finish_reasons[-1] in background.WAITING
                and self.call_request.body.get("background") is True
            ):  # fmt: skip
                background.hold(self, str(info.response_id), self.runtime.settings.lease_seconds)
                return
        except Exception:
            log_internal_error("holding a background response")
        self.finish(info)

    def read_body(self, body: Any) -> ResponseInfo:
        """A raw response's decoded JSON body."""
        return self.provider.read_response(self.api, body)

    def _raw(self, response: Any) -> Any:
        http_response = response.http_response
        content = getattr(http_response, "_content", None)
        if content is not None and not self.stream:
            # with_raw_response: the body is already read; usage comes from its JSON.
            try:
                info = self.read_body(json.loads(content))
            except ValueError:
                self.finish(None, complete=False, reason="unreadable")
                return response
            self.answered(info)
            return response
        return watch_raw_response(response, self)

    def on_error(self, error: BaseException) -> None:
        """The SDK raised before returning: the call was dispatched but nothing was billed --

        unless the last attempt was sent and never answered (a read timeout, a connection reset
        after the body left): that one stays charged at its reservation, an estimate, unless
        ``unanswered="released"``. A request that never left (connection refused) costs nothing.
        And a bare ``JSONDecodeError``: the SDKs parse error bodies leniently, so it means a
        success body they could not read. It was billed all the same, as an unreadable raw body is
        (see ``_raw``): the reserved worst case is charged rather than nothing.
        """
        if isinstance(error, json.JSONDecodeError):
            reason = "unreadable"
        elif isinstance(error, DELIBERATE):  # a retry the budget refused: already closed
            reason = "refused"
        elif attempts.failure(error) == attempts.UNANSWERED and self.runtime.settings.unanswered == "reserved":
            # The last attempt was sent and never answered: the provider may have billed it.
            reason = UNANSWERED
        else:
            reason = "error"
        self.finish(None, complete=False, error=error, reason=reason)

    def first_chunk(self) -> None:
        if self._first_chunk_at is None:
            self._first_chunk_at = time.perf_counter()

    def capture_output(self, result: Any) -> None:
        if not self.runtime.settings.capture_content:
            return
        try:
            output = get(result, "content") or get(result, "choices") or get(result, "output")
            self.span.set_attribute(names.GEN_AI_OUTPUT_MESSAGES, jsonable(output))
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
        runtime, the_run = self.runtime, self.run
        settlement: Settlement | None = None
        try:
            if info is None:
                answer = Answer(False, None, 0, complete, reason)
            else:
                answer = Answer(True, info.usage, estimate_output_tokens(info), complete, reason,
                                info.response_model)  # fmt: skip
            memo = the_run.memo if the_run is not None else None
            settlement = settle(runtime.breaker, runtime.prices, self.call_request, self.admission, answer, memo)
            if info is not None and the_run is not None:
                the_run.note_call(self.api, self.call_request.body, info.tool_calls, settlement.usage,
                                  settlement.estimated)  # fmt: skip
        except Exception:
            log_internal_error("settling a call")
        # The span ends and the measurements are recorded even when settling failed.
        try:
            if self._charged is not None:
                # The call's cost is every attempt's: the unanswered ones' charges are on the
                # balances already, and on the span and the cost metric they add to the last one.
                settlement = _add(self._charged, settlement)
            self.span.set_attribute(names.ATTEMPTS, self.attempts)
            calls = runtime.calls
            calls.end(self.span, info, settlement, stream=self.stream, error=error)
            first = self._first_chunk_at
            calls.record(
                self.provider.name, self.request.model, info, settlement,
                duration=time.perf_counter() - self.started,
                time_to_first_chunk=None if first is None else first - self.started,
                error=error,
                user_id=the_run.user_id if the_run is not None else None,
                scopes=the_run.scopes if the_run is not None else None,
            )  # fmt: skip
        except Exception:
            log_internal_error("ending a call span")


def _add(charged: Settlement | None, last: Settlement | None) -> Settlement | None:
    """Two parts of one call's cost, as one settlement (unknown when either part is)."""
    if charged is None or last is None:
        return last if charged is None else charged
    usage = charged.usage
    if last.usage is not None:
        usage = (
            last.usage
            if usage is None
            else TokenUsage(
                input_tokens=usage.input_tokens + last.usage.input_tokens,
                output_tokens=usage.output_tokens + last.usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens + last.usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens + last.usage.cache_write_tokens,
                cache_write_1h_tokens=usage.cache_write_1h_tokens + last.usage.cache_write_1h_tokens,
            )
        )
    cost = None if charged.cost is None or last.cost is None else charged.cost + last.cost
    return Settlement(usage, cost, charged.estimated or last.estimated, last.reason)
