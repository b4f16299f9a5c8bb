"""Error bodies in each provider's real shape, so the SDKs raise their usual exception types.

Anthropic: ``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}``.
OpenAI: ``{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}``.
"""

from __future__ import annotations

from typing import Any, Literal

ProviderName = Literal["anthropic", "openai"]

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# (type, code) as the OpenAI API sends them.
_OPENAI_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", None),
    405: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}

_DEFAULT_MESSAGES = {
    400: "Invalid request.",
    401: "Invalid API key.",
    403: "Permission denied.",
    404: "Not found.",
    405: "Method not allowed.",
    429: "Rate limit reached (fake provider).",
    500: "Internal server error (fake provider).",
    503: "Service unavailable (fake provider).",
    529: "Overloaded (fake provider).",
}


def default_message(status: int) -> str:
    return _DEFAULT_MESSAGES.get(status, f"Fake provider error {status}.")


def error_body(
    provider: ProviderName,
    status: int,
    *,
    message: str | None = None,
    error_type: str | None = None,
    request_id: str,
) -> dict[str, Any]:
    text = message if message is not None else default_message(status)
    if provider == "anthropic":
        kind = error_type or _ANTHROPIC_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": text}, "request_id": request_id}
    default_type, code = _OPENAI_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": text, "type": error_type or default_type, "param": None, "code": code}}
