"""PrefixMemo: a run's recent requests with the input tokens the provider reported for them."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_STATIC_KEYS = {
    "messages": ("model", "system", "tools", "tool_choice", "mcp_servers"),
    "chat": ("model", "tools", "tool_choice", "functions", "function_call", "response_format"),
    "responses": (
        "model",
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "previous_response_id",
        "conversation",
        "prompt",
    ),
}


def _conversation(api: str, body: Mapping[str, Any]) -> Sequence[Any] | None:
    items = body.get("input" if api == "responses" else "messages")
    if isinstance(items, (list, tuple)):
        return items
    return None


@dataclass(slots=True)
class _Remembered:
    api: str
    statics: tuple[Any, ...]
    messages: tuple[Any, ...]
    last: Any  # a deep copy of the last message, to see in-place edits
    reported: int


class PrefixMemo:
    """Per-run memory of recent requests' message lists and their reported input tokens.

    Keeps the last few conversations (a run may interleave a main agent and sub-agents); a
    request that extends a remembered one is estimated from the remembered exact count.
    """

    MAX_CONVERSATIONS = 8

    def __init__(self) -> None:
        self._entries: list[_Remembered] = []

    def remember(self, api: str, body: Mapping[str, Any], reported_input_tokens: int) -> None:
        try:
            messages = _conversation(api, body)
            keys = _STATIC_KEYS.get(api)
            if messages is None or not messages or keys is None or reported_input_tokens < 0:
                return
            entry = _Remembered(
                api=api,
                statics=tuple(body.get(key) for key in keys),
                messages=tuple(messages),
                last=copy.deepcopy(messages[-1]),
                reported=int(reported_input_tokens),
            )
            # No lock: remember() runs when a call settles, which may be inside a garbage
            # collection on a thread that holds any lock. The list is replaced in one assignment;
            # two racing calls may drop one entry, which only costs a memo miss.
            # The same conversation grown by a turn replaces its older entry.
            kept = [old for old in self._entries if not _extends(entry, old)]
            kept.append(entry)
            self._entries = kept[-self.MAX_CONVERSATIONS :]
        except Exception:
            return  # an uncopyable or uncomparable message: simply not memoized

    def match(self, api: str, body: Mapping[str, Any]) -> tuple[int, int] | None:
        """(reported tokens of the remembered prefix, index of the first new message) or None."""
        messages = _conversation(api, body)
        if not messages:
            return None
        keys = _STATIC_KEYS.get(api, ())
        best: _Remembered | None = None
        for entry in self._entries:
            old = entry.messages
            count = len(old)
            # The longest remembered prefix leaves the least to estimate.
            if entry.api != api or len(messages) < count or (best is not None and count <= len(best.messages)):
                continue
            try:
                # Tuple equality tries identity first, so resent message objects cost one pointer
                # compare each; OpenAI's SDK copies every message per request, and equal copies
                # are compared structurally (their strings are still shared, hence cheap).
                if tuple(messages[: count - 1]) != old[: count - 1]:
                    continue
                # The last remembered message against its snapshot: catches edits made in place.
                if messages[count - 1] != entry.last:
                    continue
                if any(
                    not (now is then or now == then)
                    for now, then in zip((body.get(key) for key in keys), entry.statics, strict=True)
                ):
                    continue
            except Exception:
                continue
            best = entry
        return None if best is None else (best.reported, len(best.messages))


def _extends(new: _Remembered, old: _Remembered) -> bool:
    count = len(old.messages)
    return (
        new.api == old.api
        and len(new.messages) >= count
        and new.messages[:count] == old.messages
        and new.statics == old.statics
    )
