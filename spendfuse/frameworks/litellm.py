"""LiteLLM: calls that bypass the two SDKs are budgeted and traced on LiteLLM's own HTTP handler.

LiteLLM's OpenAI path goes through the ``openai`` SDK, which spendfuse already patches. Its
Anthropic path posts the Messages body with its own ``HTTPHandler`` / ``AsyncHTTPHandler``: this
adapter patches their ``post`` and treats a post to an Anthropic ``/v1/messages`` URL exactly like
an SDK call (same admission, ``chat {model}`` span, settlement, streams settled from the SSE events
LiteLLM reads). Every other post is left alone; a post that looks like a model call of another
provider is logged once as not budgeted, so nothing is unbudgeted silently.

Each call is budgeted once: the SDK path never goes through ``HTTPHandler.post``, and the SDK
wrapper's re-entry guard is honoured should it ever.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from types import ModuleType, SimpleNamespace
from typing import Any

import wrapt

from spendfuse import runtime
from spendfuse.errors import BudgetExceeded, BudgetStoreUnavailable, UnpricedModelError
from spendfuse.frameworks._runs import enabled

log = logging.getLogger("spendfuse")

NAME = "litellm"
_MODEL_PATHS = (
    "/chat/completions",
    "/completions",
    "/responses",
    ":generatecontent",
    ":streamgeneratecontent",
    "/converse",
    "/converse-stream",
    "/invoke",
    "/invoke-with-response-stream",
    "/embeddings",
)
_warned: set[str] = set()
DELIBERATE = (BudgetExceeded, UnpricedModelError, BudgetStoreUnavailable)


_PROVIDER: Any = None


def _provider() -> Any:
    # The Messages API read without the anthropic SDK, which LiteLLM's own path does not use.
    global _PROVIDER
    if _PROVIDER is None:
        from spendfuse.instrumentation.anthropic import Anthropic

        _PROVIDER = Anthropic(sdk=False)
    return _PROVIDER


def _in_sdk_call() -> bool:
    # The SDK wrapper's re-entry guard: a post made while an SDK call is in flight is part of it.
    try:
        from spendfuse.instrumentation.wrappers import _IN_CALL
    except ImportError:
        return False
    return _IN_CALL.get()


def _body(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The JSON body and the keyword LiteLLM passed it under."""
    for key in ("json", "data", "content"):
        value = kwargs.get(key)
        if isinstance(value, dict):
            return value, key
        if isinstance(value, (str, bytes)):
            try:
                parsed = json.loads(value)
            except ValueError:
                return None, None
            return (parsed, key) if isinstance(parsed, dict) else (None, None)
    return None, None


def _unbudgeted(url: str) -> None:
    path = url.split("?", 1)[0].rstrip("/").lower()
    if not path.endswith(_MODEL_PATHS):
        return
    host = path.split("://", 1)[-1].split("/", 1)[0]
    if host not in _warned:
        _warned.add(host)
        log.warning(
            "spendfuse: LiteLLM sent a model call to %s with its own HTTP client; only Anthropic's Messages "
            "API is budgeted on that path (OpenAI goes through the openai SDK): this call is not budgeted",
            host,
        )


def _begin(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A started ``ModelCall`` for an Anthropic Messages post, or None to pass the post through.

    Budget errors propagate: they are the one deliberate raise.
    """
    active = runtime.current()
    if active is None or not enabled(NAME) or _in_sdk_call():
        return None
    try:
        from spendfuse.instrumentation.call import begin

        url = str(kwargs.get("url", args[0] if args else ""))
        provider = _provider()
        api = provider.route(url)
        if api is None:
            _unbudgeted(url)
            return None
        body, key = _body(kwargs)
        if body is None or key is None:
            log.warning("spendfuse: a LiteLLM post to %s has no JSON body spendfuse can read: not budgeted", url)
            return None
        import httpx

        options = SimpleNamespace(url=url, json_data=body)
        client = SimpleNamespace(base_url=httpx.URL(url))
    except Exception:
        log.debug("spendfuse: could not read a LiteLLM request", exc_info=True)
        return None
    try:
        call = begin(active, provider, client, (None, options), {"stream": bool(kwargs.get("stream"))})
    except DELIBERATE:
        raise
    except Exception:
        # The SDK patch's call machinery changed shape: log loudly rather than break the call.
        log.warning("spendfuse: a LiteLLM Anthropic call could not be budgeted", exc_info=True)
        return None
    if call is not None and key != "json":
        try:
            # A clamp lowers max_tokens in the body; LiteLLM sends the serialized copy, so re-serialize.
            original = kwargs[key]
            if json.loads(original) != body:
                encoded = json.dumps(body)
                kwargs[key] = encoded.encode() if isinstance(original, bytes) else encoded
        except Exception:
            log.debug("spendfuse: could not re-serialize a clamped LiteLLM request", exc_info=True)
    return call


def _final(event: dict[str, Any]) -> bool:
    kind = event.get("type")
    if kind == "message_stop":
        return True
    delta = event.get("delta")
    return kind == "message_delta" and isinstance(delta, dict) and bool(delta.get("stop_reason"))


class _SSE:
    """Splits streamed bytes into SSE ``data:`` payloads and hands the decoded events on."""

    def __init__(self, ending: Any) -> None:
        self._ending = ending
        self._observe = ending.observer()
        self._buffer = b""

    def feed(self, chunk: bytes) -> None:
        try:
            self._buffer += chunk
            *lines, self._buffer = self._buffer.split(b"\n")
            for line in lines:
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload and payload != b"[DONE]":
                    event = json.loads(payload)
                    if isinstance(event, dict):
                        self._ending.first_chunk()
                        self._observe(event)
                        if _final(event):
                            # LiteLLM stops reading once it has the stop reason and closes the
                            # response: the usage it carries is the final one.
                            self._ending.end("complete")
        except Exception:
            log.debug("spendfuse: could not read a LiteLLM stream event", exc_info=True)


def _watch_response(call: Any, response: Any) -> Any:
    """Settle when LiteLLM has read the stream (all decoded bytes pass through ``iter_bytes``)."""
    from spendfuse.instrumentation.streams import Ending

    ending = Ending(call, call.provider.stream_reader(call.api, call.runtime.settings.capture_content))
    sse = _SSE(ending)
    iter_bytes, aiter_bytes = response.iter_bytes, response.aiter_bytes
    close, aclose = response.close, response.aclose

    def watched(*args: Any, **kwargs: Any) -> Iterator[bytes]:
        try:
            for chunk in iter_bytes(*args, **kwargs):
                sse.feed(chunk)
                yield chunk
        except GeneratorExit:
            ending.end("abandoned")
            raise
        except BaseException as error:
            ending.end("error", error)
            raise
        ending.end("complete")

    async def awatched(*args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
        try:
            async for chunk in aiter_bytes(*args, **kwargs):
                sse.feed(chunk)
                yield chunk
        except GeneratorExit:
            ending.end("abandoned")
            raise
        except BaseException as error:
            ending.end("error", error)
            raise
        ending.end("complete")

    def closed() -> Any:
        try:
            return close()
        finally:
            ending.end("abandoned")

    async def aclosed() -> Any:
        try:
            return await aclose()
        finally:
            ending.end("abandoned")

    response.iter_bytes, response.aiter_bytes = watched, awatched
    response.close, response.aclose = closed, aclosed
    return response


def _settle(call: Any, response: Any, stream: bool) -> Any:
    try:
        if stream:
            return _watch_response(call, response)
        call.finish(call.read_body(response.json()))
    except Exception:
        log.debug("spendfuse: could not read a LiteLLM response", exc_info=True)
        call.finish(None, complete=False, reason="unreadable")
    return response


def _post(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    call = _begin(args, kwargs)
    if call is None:
        return wrapped(*args, **kwargs)
    token = call.enter()  # the call span is current while LiteLLM sends, as for an SDK call
    try:
        response = wrapped(*args, **kwargs)
    except BaseException as error:
        call.leave(token)
        call.on_error(error)
        raise
    call.leave(token)
    return _settle(call, response, bool(kwargs.get("stream")))


def _apost(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    async def post() -> Any:
        call = _begin(args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        token = call.enter()
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as error:
            call.leave(token)
            call.on_error(error)
            raise
        call.leave(token)
        return _settle(call, response, bool(kwargs.get("stream")))

    return post()


def patch(module: ModuleType) -> list[tuple[Any, str]]:
    wrapt.wrap_function_wrapper(module.HTTPHandler, "post", _post)
    wrapt.wrap_function_wrapper(module.AsyncHTTPHandler, "post", _apost)
    return [(module.HTTPHandler, "post"), (module.AsyncHTTPHandler, "post")]
