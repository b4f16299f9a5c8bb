"""The demo behind ``spendfuse demo``: small agents against the built-in fake provider.

``agent`` is an ordinary tool-using agent; ``scenario`` scripts three users' runs (one completes,
one loops until its breaker trips, one hits a daily budget); ``telemetry`` and ``progress`` wire the
demo's own ledger, the collector when configured, and the live progress lines.
"""
