"""Model names as callers spell them: provider prefixes, cloud decorations, date suffixes."""

from __future__ import annotations

import re

_DATE_SUFFIX = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")
# Bedrock ("us.anthropic.claude-...-v2:0") and Vertex ("claude-...@20241022") spellings.
_CLOUD_PREFIX = re.compile(r"^(?:[a-z]{2,4}\.)?anthropic\.")
_CLOUD_SUFFIX = re.compile(r"(?:@\d{8}|-v\d+(?::\d+)?)$")


def _strip_prefix(model: str, provider: str) -> str:
    name = model.strip().lower()
    for prefix in ("anthropic/", "openai/", f"{provider}/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name


def _name_variants(name: str) -> tuple[str, ...]:
    """``name`` first, then without cloud decorations and without a date suffix / ``-latest``."""
    variants = [name]
    bare = _CLOUD_PREFIX.sub("", name)
    while True:
        stripped = _CLOUD_SUFFIX.sub("", bare)
        if stripped == bare:
            break
        bare = stripped
    for candidate in (bare, _DATE_SUFFIX.sub("", bare), bare.removesuffix("-latest")):
        if candidate and candidate not in variants:
            variants.append(candidate)
    return tuple(variants)
