"""spendfuse: one import makes Anthropic and OpenAI agents observable and spend-safe.

The public API only; each name lives in the module its folder suggests.
"""

from spendfuse._version import __version__
from spendfuse.budgets.budget import Budget
from spendfuse.errors import (
    BudgetExceeded,
    BudgetStoreUnavailable,
    ConfigError,
    CostLimitExceeded,
    RepeatLimitExceeded,
    TimeLimitExceeded,
    TokenLimitExceeded,
    TurnLimitExceeded,
    UnpricedModelError,
    is_budget_stop,
    retry_unless_budget_stop,
)
from spendfuse.instrumentation.instrumentor import instrument, uninstrument
from spendfuse.runs.run import Run, current_run, run
from spendfuse.runs.tool import tool
from spendfuse.runtime import flush

__all__ = [
    "Budget",
    "BudgetExceeded",
    "BudgetStoreUnavailable",
    "ConfigError",
    "CostLimitExceeded",
    "RepeatLimitExceeded",
    "Run",
    "TimeLimitExceeded",
    "TokenLimitExceeded",
    "TurnLimitExceeded",
    "UnpricedModelError",
    "__version__",
    "current_run",
    "flush",
    "instrument",
    "is_budget_stop",
    "retry_unless_budget_stop",
    "run",
    "tool",
    "uninstrument",
]
