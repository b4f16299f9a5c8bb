"""Model prices as exact integers, from a private copy of genai-prices' bundled data.

Units. A rate is integer pico-dollars (1e-12 USD) per token: $3 per million tokens is
3_000_000 pico/token. Costs come out in micro-dollars, rounded up once at the end
(``ceil(total_pico / 1_000_000)``), so repeated settling never drifts and never undercharges.
Decimal is used only when a price enters the book (bundled data or an override); the hot path is
integer multiply-adds.

Why a private copy. genai-prices keeps one process-global snapshot that other libraries in the same
process (pydantic-ai, logfire, its own background updater) may replace at any time. A budget must
not change its prices under a running agent, so the book reads the data module that ships inside
the installed wheel (``genai_prices.data.providers``) and uses only genai-prices' pure lookup
helpers on it. The global snapshot is never read, the updater is never started, the network is
never touched. Time-conditional prices are resolved once, for "now" at construction; build a new
book to pick up a price change that starts later.

How the data maps to :class:`Rates`.
* ``input_mtok`` / ``output_mtok`` are the uncached input and the output rates. A model without an
  input price is unpriced; one without an output price (embeddings) has a zero output rate, as in
  genai-prices.
* A missing ``cache_read_mtok`` or ``cache_write_mtok`` means the provider bills those tokens as
  plain input, so both fall back to the input rate. A missing ``cache_write_1h_mtok`` falls back to
  the (5 minute) cache-write rate. This is exactly how genai-prices decomposes usage, and is what
  makes our results equal to its ``calc_price``.
* Long-context tiers (``TieredPrices``) switch *every* rate once the total input tokens (cache
  included) exceed the tier start; the thresholds of all rates are merged into ``Rates.tiers``.
* Server-side tool fees (``web_searches_kcount``, ``storage_searches_kcount``: USD per thousand
  uses) become ``Rates.tool_fees``, pico-dollars per use of web search, web fetch, file search and
  code execution. Modality-specific prices (audio/image tokens) and per-request fees are not
  modelled: the usage record carries text tokens and server-tool uses only.
* Request variants (OpenAI ``service_tier`` priority/flex, Anthropic ``speed="fast"``) are applied
  when passed to :meth:`PriceBook.rates`; ``"auto"``/``"default"`` price at the standard rate.
* From gpt-5.6 OpenAI writes prompts to cache implicitly and bills the writes at 1.25x input, so
  OpenAI rates carry ``implicit_cache_write`` and their worst case always assumes a write.

Overrides (``PriceBook(overrides)`` / ``PriceBook.from_file``) are USD per million tokens, parsed
exactly (``Decimal(str(x))``). An entry with prices replaces the bundled entry of that model
whole, tiers included (server-tool fees not given keep the bundled ones: ``web_search``,
``web_fetch``, ``file_search``, ``code_execution`` in USD per 1000 uses, also alone in an entry to
add a fee); missing cache prices default like the bundled data does (reads and writes
at the input price, 1h writes at the write price), so give ``cache_write`` explicitly for a
provider that charges a write premium. An entry with only ``max_output_tokens`` keeps the bundled
prices. Keys match the model name case-insensitively, also without a date suffix or cloud
decorations; ``"anthropic/name"`` wins over ``"name"`` for that provider.
"""

from spendfuse.budgets.pricing.book import PriceBook
from spendfuse.budgets.pricing.overrides import OVERRIDE_FORM
from spendfuse.budgets.pricing.rates import PICO_PER_MICRO, Rates

__all__ = ["OVERRIDE_FORM", "PICO_PER_MICRO", "PriceBook", "Rates"]
