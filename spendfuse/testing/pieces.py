"""How streamed text is cut into deltas; the pieces always concatenate back to the original."""

from __future__ import annotations

import re

# Split right before every word that follows whitespace: "Hello big world" -> "Hello ", "big ", "world".
_WORD_START = re.compile(r"(?<=\s)(?=\S)")

ARGUMENT_PIECE_CHARS = 12


def text_pieces(text: str) -> list[str]:
    return [piece for piece in _WORD_START.split(text) if piece]


def argument_pieces(arguments_json: str) -> list[str]:
    """Tool-call argument JSON in fixed-size fragments, the way models stream partial JSON."""
    step = ARGUMENT_PIECE_CHARS
    return [arguments_json[i : i + step] for i in range(0, len(arguments_json), step)]
