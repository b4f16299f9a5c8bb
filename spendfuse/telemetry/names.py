"""Every telemetry name spendfuse emits, in one place.

Dashboards, alert rules and users' queries depend on these exact strings, so they are constants
here and nowhere else. GenAI names follow the OpenTelemetry GenAI semantic conventions; our own
names live under ``spendfuse.``.
"""

from __future__ import annotations

# --- span names -------------------------------------------------------------------------------
OPERATION_CHAT = "chat"
OPERATION_INVOKE_AGENT = "invoke_agent"
OPERATION_EXECUTE_TOOL = "execute_tool"

# --- GenAI semantic-convention attributes -----------------------------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
# Part of gen_ai.usage.output_tokens (OpenAI bills reasoning as output): never added to it.
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"
TOKEN_TYPE_INPUT = "input"
TOKEN_TYPE_OUTPUT = "output"
# Experimental (semantic-conventions-genai, "development"): only with the opt-in below. Output tokens
# are then recorded split by phase, so their sum stays the output total.
GEN_AI_TOKEN_PHASE = "gen_ai.token.phase"
TOKEN_PHASE_RESPONSE = "response"
TOKEN_PHASE_REASONING = "reasoning"

# OTEL_SEMCONV_STABILITY_OPT_IN (a comma-separated list, as the OpenTelemetry instrumentations read it):
# this value opts in to GenAI names the conventions still mark experimental.
SEMCONV_OPT_IN_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
SEMCONV_GEN_AI_LATEST_EXPERIMENTAL = "gen_ai_latest_experimental"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
USER_ID = "user.id"

PROVIDER_ANTHROPIC = "anthropic"
PROVIDER_OPENAI = "openai"

# --- spendfuse span attributes ----------------------------------------------------------------
RUN_ID = "spendfuse.run.id"
RUN_NAME = "spendfuse.run.name"
PARENT_RUN_ID = "spendfuse.run.parent_id"
COST_USD = "spendfuse.cost.usd"
COST_UNKNOWN = "spendfuse.cost.unknown"
RESERVED_USD = "spendfuse.reserved.usd"
USAGE_ESTIMATED = "spendfuse.usage.estimated"
ATTEMPTS = "spendfuse.attempts"  # requests sent for one call, the SDK's retries included
STREAM_END = "spendfuse.stream.end"
BUDGET_USD = "spendfuse.budget.usd"  # the run's own limits, on the run span
BUDGET_TURNS = "spendfuse.budget.turns"
BUDGET_TOKENS = "spendfuse.budget.tokens"
BUDGET_SECONDS = "spendfuse.budget.seconds"
BUDGET_REPEATS = "spendfuse.budget.repeats"
SPENT_USD = "spendfuse.spent.usd"
SPENT_TURNS = "spendfuse.spent.turns"
SPENT_TOKENS = "spendfuse.spent.tokens"
OUTCOME = "spendfuse.outcome"
BREAKER_TRIPPED = "spendfuse.breaker.tripped"
BREAKER_APPROVED = "spendfuse.breaker.approved"
CLAMPED_MAX_TOKENS = "spendfuse.clamped.max_tokens"
STORE_FAIL_OPEN = "spendfuse.store.fail_open"

# attributes of the `spendfuse.breaker.tripped` / `spendfuse.budget.warning` span events
EVENT_BREAKER_TRIPPED = "spendfuse.breaker.tripped"
EVENT_BUDGET_WARNING = "spendfuse.budget.warning"
EVENT_BREAKER_APPROVED = "spendfuse.breaker.approved"
BREAKER_SCOPE = "spendfuse.breaker.scope"
BREAKER_KEY = "spendfuse.breaker.key"
BREAKER_LIMIT = "spendfuse.breaker.limit"
BREAKER_LIMIT_VALUE = "spendfuse.breaker.limit_value"
BREAKER_SPENT = "spendfuse.breaker.spent"
# What calls in flight have reserved on the scope, apart from what it has spent (settled).
BREAKER_IN_FLIGHT = "spendfuse.breaker.in_flight"
BREAKER_REQUESTED = "spendfuse.breaker.requested"
BREAKER_WINDOW = "spendfuse.breaker.window"
BREAKER_WINDOW_RESETS_AT = "spendfuse.breaker.window_resets_at"

OUTCOME_COMPLETED = "completed"
OUTCOME_TRIPPED = "tripped"
OUTCOME_ERROR = "error"

# --- metrics ----------------------------------------------------------------------------------
METRIC_TOKEN_USAGE = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"
METRIC_TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
METRIC_COST = "spendfuse.cost"
METRIC_BREAKER_TRIPS = "spendfuse.breaker.trips"
METRIC_BUDGET_WARNINGS = "spendfuse.budget.warnings"
METRIC_RUNS = "spendfuse.runs"
METRIC_STORE_ERRORS = "spendfuse.store.errors"
METRIC_BUDGET_SPENT = "spendfuse.budget.spent"
METRIC_BUDGET_LIMIT = "spendfuse.budget.limit"

# metric attribute keys of our own (GenAI keys above are reused where they apply)
METRIC_ATTR_SCOPE = "spendfuse.scope"
# ``spendfuse.scope.team = "search"``: a run's keyed scope on its spans (every scope) and on
# metrics (only the scopes of the ``metric_scopes`` setting: metric labels must stay few).
SCOPE_PREFIX = "spendfuse.scope."
# The key of a scope window's gauges (``spendfuse.scope`` names the scope): metric_scopes only.
METRIC_ATTR_SCOPE_KEY = "spendfuse.scope.key"
METRIC_ATTR_LIMIT = "spendfuse.limit"
METRIC_ATTR_OUTCOME = "spendfuse.outcome"
METRIC_ATTR_REASON = "spendfuse.reason"

# Semconv bucket boundaries (GenAI metrics spec): explicit so every exporter agrees.
TOKEN_USAGE_BUCKETS: tuple[float, ...] = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
DURATION_BUCKETS: tuple[float, ...] = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
TIME_TO_FIRST_CHUNK_BUCKETS: tuple[float, ...] = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)

# Prometheus names the metrics above become (OTel -> Prometheus translation), relied on by the
# dashboards and alert rules shipped in this repository.
PROM_COST = "spendfuse_cost_USD_total"
PROM_BREAKER_TRIPS = "spendfuse_breaker_trips_total"
PROM_BUDGET_WARNINGS = "spendfuse_budget_warnings_total"
PROM_RUNS = "spendfuse_runs_total"
PROM_STORE_ERRORS = "spendfuse_store_errors_total"
PROM_BUDGET_SPENT = "spendfuse_budget_spent_USD"
PROM_BUDGET_LIMIT = "spendfuse_budget_limit_USD"
PROM_TOKEN_USAGE = "gen_ai_client_token_usage"
PROM_OPERATION_DURATION = "gen_ai_client_operation_duration_seconds"
