"""How many server-side tool uses a request can be billed for, read from the body the SDK sends.

Anthropic's server tools (``web_search_*``, ``web_fetch_*``, ``code_execution_*``) take a
``max_uses`` each; OpenAI Responses' built-in tools (``web_search*``, ``file_search``,
``code_interpreter``) are bounded together by ``max_tool_calls``. A tool without a bound is
counted at ``server_tool_default_uses``: the provider does not cap it, so the worst case states the
bound it assumes (a tool used more often than that is still charged in full at settlement).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ToolUses = tuple[int, int, int, int]  # SERVER_TOOLS order: web search, web fetch, file search, code

_ANTHROPIC = (("web_search", 0), ("web_fetch", 1), ("code_execution", 3))
_OPENAI = (("web_search", 0), ("file_search", 2), ("code_interpreter", 3))


def _bound(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def tool_uses(provider: str, api: str, body: Mapping[str, Any], default: int) -> ToolUses | None:
    """The most uses of each server tool the request allows; None when it declares none."""
    tools = body.get("tools")
    if not isinstance(tools, (list, tuple)) or not tools:
        return None
    counts = [0, 0, 0, 0]
    found = False
    if provider == "anthropic":
        for tool in tools:
            kind = tool.get("type") if isinstance(tool, Mapping) else None
            if not isinstance(kind, str):
                continue
            for prefix, index in _ANTHROPIC:
                if kind.startswith(prefix):
                    limit = _bound(tool.get("max_uses"))
                    counts[index] += default if limit is None else limit
                    found = True
    elif provider == "openai" and api == "responses":
        overall = _bound(body.get("max_tool_calls"))
        for tool in tools:
            kind = tool.get("type") if isinstance(tool, Mapping) else None
            if not isinstance(kind, str):
                continue
            for prefix, index in _OPENAI:
                if kind.startswith(prefix):
                    # max_tool_calls bounds all built-in tool calls of the response together: each
                    # tool may take all of them (the dearest is then the bound).
                    counts[index] = default if overall is None else overall
                    found = True
    if not found:
        return None
    return counts[0], counts[1], counts[2], counts[3]
