"""What a call span records besides usage and money: the server it went to, and (only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` opts in) the messages, as JSON text."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from spendfuse.telemetry import names
from spendfuse.telemetry.calls import CONTENT_LIMIT

_servers: dict[int, tuple[Any, str | None, int | None]] = {}  # id(base_url) -> (base_url, host, port)
_NO_SERVER: tuple[str | None, int | None] = (None, None)


def server_of(instance: Any) -> tuple[str | None, int | None]:
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
        return _NO_SERVER


def jsonable(value: Any) -> str:
    def default(obj: Any) -> Any:
        dump = getattr(obj, "model_dump", None)
        if not callable(dump):
            return str(obj)
        try:
            # No serializer warnings into the user's process: a provider's odd field (a float token
            # count, say) is the provider's to explain, and the content is recorded as it came.
            return dump(mode="json", warnings=False)
        except TypeError:  # a model_dump without the keyword
            return dump(mode="json")

    try:
        return json.dumps(value, default=default, ensure_ascii=False)[:CONTENT_LIMIT]
    except Exception:
        return ""


def content_attributes(body: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    system = body.get("system") if "system" in body else body.get("instructions")
    if system:
        attributes[names.GEN_AI_SYSTEM_INSTRUCTIONS] = jsonable(system)
    attributes[names.GEN_AI_INPUT_MESSAGES] = jsonable(body.get("messages") or body.get("input"))
    return attributes
