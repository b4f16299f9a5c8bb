from __future__ import annotations

from typing import Any

import pytest

from ._calls import SpanTracker


@pytest.fixture
def tracker(telemetry: Any) -> SpanTracker:
    """Sees every span the instrumented code starts, ended or not."""
    processor = SpanTracker()
    telemetry.tracer_provider.add_span_processor(processor)
    return processor
