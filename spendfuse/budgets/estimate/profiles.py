"""Per-model estimation profiles: text weights and factor, image accounting, and the text memo."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from spendfuse.budgets.estimate.text import _CL100K, _CLAUDE_47_P95, _CLAUDE_P95, _O200K, _UNKNOWN_FACTOR, _text_micro

# OpenAI image accounting by model family (OpenAI vision guide, "calculating costs"):
# ("tile", base, per 512 px tile) after fitting 2048x2048 then 768 px shortest side, or
# ("patch", multiplier in thousandths) over 32 px patches capped at 1536.
_OPENAI_IMAGE_FAMILIES: tuple[tuple[str, tuple[str, int, int]], ...] = (
    ("gpt-4o-mini", ("tile", 2833, 5667)),
    ("gpt-4.1-mini", ("patch", 1620, 0)),
    ("gpt-4.1-nano", ("patch", 2460, 0)),
    ("gpt-5-mini", ("patch", 1620, 0)),
    ("gpt-5-nano", ("patch", 2460, 0)),
    ("o4-mini", ("patch", 1720, 0)),
    ("gpt-4o", ("tile", 85, 170)),
    ("chatgpt-4o", ("tile", 85, 170)),
    ("gpt-4.1", ("tile", 85, 170)),
    ("gpt-4.5", ("tile", 85, 170)),
    ("gpt-4-turbo", ("tile", 85, 170)),
    ("gpt-4-vision", ("tile", 85, 170)),
    ("computer-use", ("tile", 65, 129)),
    ("o1", ("tile", 75, 150)),
    ("o3", ("tile", 75, 150)),
    ("gpt-5", ("tile", 70, 140)),
)


@dataclass(frozen=True, slots=True)
class _Profile:
    text: tuple[int, ...]  # micro-tokens per feature, factor included
    anthropic_style: bool
    high_res: bool  # Claude image/page limits of Opus 4.7+
    image_family: tuple[str, int, int] | None  # OpenAI image accounting
    # Bounds of texts already seen: an agent resends the same system prompt, tools and messages
    # (the same str objects, whose hash Python caches), so most texts are a dict hit.
    texts: dict[str, int] = field(default_factory=dict, compare=False, hash=False, repr=False)
    texts_chars: list[int] = field(default_factory=lambda: [0], compare=False, hash=False, repr=False)


_TEXT_MEMO_CHARS = 4_000_000  # per profile; past it the memo starts over (a bound, not an LRU)


def _text_bound(p: _Profile, text: str) -> int:
    found = p.texts.get(text)
    if found is None:
        found = _text_micro(p.text, text)
        chars = p.texts_chars
        chars[0] += len(text)
        if chars[0] > _TEXT_MEMO_CHARS:
            p.texts.clear()
            chars[0] = len(text)
        p.texts[text] = found
    return found


_CLAUDE_VERSION = re.compile(r"claude-(?:[a-z]+-)?(\d+)(?:[.-](\d{1,2})(?!\d))?")
_PROFILES: dict[tuple[str, str], _Profile] = {}


def _scaled(weights: tuple[int, ...], factor: int) -> tuple[int, ...]:
    return tuple(w * factor for w in weights)  # thousandths x thousandths = millionths


def _profile(provider: str, model: str) -> _Profile:
    key = (provider, model)
    found = _PROFILES.get(key)
    if found is None:
        found = _make_profile(provider, model)
        if len(_PROFILES) > 1024:
            _PROFILES.clear()
        _PROFILES[key] = found
    return found


def _make_profile(provider: str, model: str) -> _Profile:
    name = model.strip().lower()
    for prefix in ("anthropic/", "openai/", "ft:"):
        name = name.removeprefix(prefix)
    if "claude" in name or provider.lower() == "anthropic":
        match = _CLAUDE_VERSION.search(name)
        version = (int(match.group(1)), int(match.group(2) or 0)) if match else None
        # A Claude we cannot date gets the newer, larger tokenizer: over- beats under-estimating.
        new = version is None or version >= (4, 7)
        factor = _CLAUDE_47_P95 if new else _CLAUDE_P95
        return _Profile(_scaled(_O200K, factor), True, new, None)
    family = _openai_tokenizer(name)
    if family == "cl100k":
        text = _scaled(_CL100K, 1000)
    elif family == "o200k":
        text = _scaled(_O200K, 1000)
    else:
        text = _scaled(_O200K, _UNKNOWN_FACTOR)
    image = None
    for prefix, params in _OPENAI_IMAGE_FAMILIES:
        if name == prefix or name.startswith(prefix + "-"):
            image = params
            break
    return _Profile(text, False, False, image)


def _openai_tokenizer(name: str) -> str:
    if name.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "chatgpt-", "gpt-oss", "codex", "computer-use")):
        return "o200k"
    if name.startswith(("gpt-3.5", "gpt-35", "gpt-4", "text-embedding", "davinci", "babbage")):
        return "cl100k"
    if re.match(r"(?:gpt-[5-9]|gpt-\d\d|o\d)", name):
        return "o200k"
    return "unknown"
