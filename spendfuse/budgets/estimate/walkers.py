"""Request walkers per API: Anthropic Messages, OpenAI Chat Completions and Responses."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

from spendfuse.budgets.estimate.media import _image_size, _pdf_pages, _tiles
from spendfuse.budgets.estimate.profiles import _Profile, _text_bound
from spendfuse.budgets.estimate.text import _MICRO, _bytes_micro, _text_micro

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
