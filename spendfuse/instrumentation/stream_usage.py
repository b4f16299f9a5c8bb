"""Asking OpenAI chat streams for their usage, and hiding the answer from callers that did not ask.

A chat stream sent without ``stream_options.include_usage`` carries no usage at all, so its cost
can only be estimated (LangChain, LiteLLM and the OpenAI Agents chat model stream this way). The
hosts that accept the option (OpenAI, Azure OpenAI by default: ``stream_usage_hosts``) are asked
for it in the body the SDK sends, and the one extra chunk it brings -- empty ``choices``, the
usage -- is withheld from the caller: user code indexing ``chunk.choices[0]`` would break on it.
The other chunks then carry ``"usage": null``; the SDK's models would count that field as set
(``to_dict()`` / ``model_dump(exclude_unset=True)`` would show it), so it is unmarked again and
the caller's chunks are exactly those it would get without spendfuse.

Never for other hosts (OpenAI-compatible servers may reject the field) and never for raw or
streaming-response shapes, where the caller may read the bytes themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spendfuse.instrumentation.request import write_body_key

_RAW_HEADER = "x-stainless-raw-response"


def host_allowed(host: str | None, patterns: tuple[str, ...]) -> bool:
    if not host:
        return False
    host = host.lower()
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


def _raw_shape(options: Any) -> bool:
    headers = getattr(options, "headers", None)
    if not isinstance(headers, Mapping):
        return False
    return any(isinstance(key, str) and key.lower() == _RAW_HEADER for key in headers)


def ask_for_usage(options: Any, body: Mapping[str, Any], host: str | None, patterns: tuple[str, ...]) -> bool:
    """Make a chat stream request ask for its usage; True when we did (the caller did not)."""
    if body.get("stream") is not True:
        return False
    current = body.get("stream_options")
    if current is not None and not isinstance(current, Mapping):
        return False
    if current is not None and current.get("include_usage") is True:
        return False  # the caller asked: it sees the usage chunk, as it would without us
    if _raw_shape(options) or not host_allowed(host, patterns):
        return False
    write_body_key(options, "stream_options", {**(current or {}), "include_usage": True})
    return True


def usage_only_chunk(chunk: Any) -> bool:
    """Whether to withhold ``chunk`` from a caller that did not ask for usage.

    The usage chunk (empty ``choices`` and a usage) is withheld; any other chunk is passed on,
    with its ``usage: null`` field unmarked as set. An Azure content-filter chunk also has empty
    ``choices`` but no usage: it is passed on, as the caller would get it.
    """
    usage = getattr(chunk, "usage", None)
    if usage is None:
        fields_set = getattr(chunk, "__pydantic_fields_set__", None)
        if isinstance(fields_set, set):
            fields_set.discard("usage")
        return False
    choices = getattr(chunk, "choices", None)
    return isinstance(choices, list) and not choices
