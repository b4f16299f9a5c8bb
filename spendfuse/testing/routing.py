"""Which API a request is for, and whether its body is one the real API would accept.

Routes match on the path's end so Azure-style prefixes (``/openai/deployments/NAME/chat/completions``)
reach the same handlers; the query string (``?beta=true`` from ``beta.messages``) is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spendfuse.testing.errors_wire import ProviderName
from spendfuse.testing.usage import Api

_ROUTES: tuple[tuple[str, ProviderName, Api], ...] = (
    ("/v1/messages", "anthropic", "messages"),
    ("/chat/completions", "openai", "chat"),
    ("/responses", "openai", "responses"),
)

_REQUIRED: dict[Api, tuple[tuple[str, type], ...]] = {
    "messages": (("model", str), ("messages", list), ("max_tokens", int)),
    "chat": (("model", str), ("messages", list)),
    "responses": (("model", str),),
}


def route(path: str) -> tuple[ProviderName, Api] | None:
    trimmed = path.rstrip("/")
    for suffix, provider, api in _ROUTES:
        if trimmed.endswith(suffix):
            return provider, api
    return None


def guess_provider(headers: Mapping[str, str]) -> ProviderName:
    """For unknown routes: answer in the style of whichever SDK seems to be calling."""
    if "anthropic-version" in headers or "x-api-key" in headers:
        return "anthropic"
    return "openai"


def validation_error(api: Api, body: Any) -> str | None:
    """A message in the providers' style when the body would be rejected, else None."""
    if not isinstance(body, Mapping):
        return "The request body is not valid JSON or not a JSON object."
    for name, kind in _REQUIRED[api]:
        value = body.get(name)
        if value is None:
            return f"{name}: Field required" if api == "messages" else f"Missing required parameter: '{name}'."
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{name}: expected {kind.__name__}, got {type(value).__name__}"
    messages = body.get("messages")
    if isinstance(messages, list) and not messages:
        return "messages: at least one message is required"
    return None
