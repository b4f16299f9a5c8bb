"""Links from a run to the shipped Grafana run view (grafana/dashboards/run-view.json)."""

from __future__ import annotations

import os
from urllib.parse import quote

GRAFANA_URL_ENV = "SPENDFUSE_GRAFANA_URL"
RUN_VIEW_UID = "spendfuse-run"
RUN_VIEW_SLUG = "spendfuse-run"
RUN_ID_VARIABLE = "run_id"
TRACE_ID_VARIABLE = "trace_id"


def run_view_url(run_id: str, grafana_url: str | None = None, *, trace_id: str | None = None) -> str | None:
    """Return the URL of the Grafana run view for ``run_id``, or None when no Grafana is configured.

    ``grafana_url`` is Grafana's base URL (``http://localhost:3000``); when it is None the
    ``SPENDFUSE_GRAFANA_URL`` environment variable is used. An empty value counts as unset.
    ``trace_id`` (hex), when given, also fills the view's trace panel.
    """
    base = grafana_url if grafana_url is not None else os.environ.get(GRAFANA_URL_ENV)
    if base is None or not base.strip():
        return None
    url = f"{base.strip().rstrip('/')}/d/{RUN_VIEW_UID}/{RUN_VIEW_SLUG}?var-{RUN_ID_VARIABLE}={quote(run_id, safe='')}"
    if trace_id:
        url += f"&var-{TRACE_ID_VARIABLE}={quote(trace_id, safe='')}"
    return url
