"""The request body as the SDK will send it, and writing a lowered ``max_tokens`` (or any key) into it.

The SDKs build the body from ``options.json_data`` and merge ``extra_body`` (``options.extra_json``)
over it when they build the HTTP request, shallowly, the extra keys winning and ``Omit`` values
dropped (``_merge_mappings`` in both SDKs' ``_base_client``). The worst case must be computed from
that merged body: ``create(max_tokens=16, extra_body={"max_tokens": 16000})`` sends 16000.
``extra_query`` and ``extra_headers`` carry nothing the worst case depends on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def sent_body(options: Any, omit: type) -> Mapping[str, Any] | None:
    """The JSON body the SDK will send, or None when it is not a JSON object.

    ``omit`` is the SDK's ``Omit`` sentinel class: newer releases leave one in ``json_data`` for
    every unset parameter until the request is built, and the SDK drops them then.
    """
    body = options.json_data
    extra = getattr(options, "extra_json", None)
    if extra is not None:
        if not isinstance(extra, Mapping):
            return None
        if body is None:
            body = {}
        elif not isinstance(body, Mapping):
            return None
        body = {**body, **extra}
    elif not isinstance(body, Mapping):
        return None
    return {key: value for key, value in body.items() if type(value) is not omit}


def write_max_tokens(options: Any, key: str, value: int) -> None:
    """Make the request send ``key: value`` (a clamp), wherever the merged body takes it from."""
    write_body_key(options, key, value)


def write_body_key(options: Any, key: str, value: Any) -> None:
    """Make the request send ``key: value``, wherever the merged body takes it from."""
    extra = getattr(options, "extra_json", None)
    if isinstance(extra, Mapping) and key in extra:
        # extra_body wins over json_data: lower it there, in a copy (it is the caller's own dict).
        options.extra_json = {**extra, key: value}
        return
    if options.json_data is None:
        options.json_data = {key: value}
    else:
        options.json_data[key] = value
