"""The text envelope: an upper bound of a text's tokens from character-class counts (see the package docstring)."""

from __future__ import annotations

import json

_MICRO = 1_000_000  # internal unit: millionths of a token, so fractional weights stay integral

# -- text envelope -------------------------------------------------------------------------------

# Feature order: words, long (per 6 letters), camel humps, capitals, digits, punctuation, newlines,
# tabs, 2-byte chars, 3-byte chars, 4-byte chars, non-ASCII words. Thousandths of a token each.
_O200K = (1150, 300, 1000, 500, 900, 750, 1700, 300, 600, 1000, 3000, 1500)
# cl100k splits non-Latin scripts far more (up to 1.6x of o200k) and base64 a little more.
_CL100K = (1250, 350, 1100, 550, 1000, 800, 1800, 300, 1000, 1600, 3000, 1500)

_CLAUDE_P95 = 1500  # thousandths; Claude 3 .. Opus 4.6
_CLAUDE_47_P95 = 1850  # Opus 4.7 and later
_UNKNOWN_FACTOR = 1500


def _class_table() -> bytes:
    out = bytearray()
    for byte in range(256):
        if 97 <= byte <= 122:
            out.append(ord("a"))
        elif 65 <= byte <= 90:
            out.append(ord("A"))
        elif 48 <= byte <= 57:
            out.append(ord("0"))
        elif byte in (10, 13):
            out.append(ord("\n"))
        elif byte in (9, 11, 12):
            out.append(ord("\t"))
        elif byte == 32:
            out.append(ord(" "))
        elif byte < 128:
            out.append(ord("."))
        elif byte < 0xC0:
            out.append(ord("c"))  # continuation byte
        elif byte < 0xE0:
            out.append(ord("2"))
        elif byte < 0xF0:
            out.append(ord("3"))
        else:
            out.append(ord("4"))
    return bytes(out)


_CLASSES = _class_table()
_LETTER_RUNS = bytes(ord("a") if (65 <= b <= 90 or 97 <= b <= 122) else ord(" ") for b in range(256))
_NON_ASCII_RUNS = bytes(ord("a") if b >= 128 else ord(" ") for b in range(256))


def _text_micro(weights: tuple[int, ...], text: str) -> int:
    """Upper bound of ``text``'s tokens, in millionths of a token."""
    if not text:
        return 0
    data = text.encode("utf-8", "surrogatepass")
    classes = data.translate(_CLASSES)
    letters = data.translate(_LETTER_RUNS)
    words = letters.count(b" a") + (letters[0] == 97)
    units = (
        weights[0] * words
        + weights[1] * letters.count(b"aaaaaa")
        + weights[2] * classes.count(b"aA")
        + weights[3] * classes.count(b"A")
        + weights[4] * classes.count(b"0")
        + weights[5] * classes.count(b".")
        + weights[6] * classes.count(b"\n")
        + weights[7] * classes.count(b"\t")
    )
    if not text.isascii():
        runs = data.translate(_NON_ASCII_RUNS)
        units += (
            weights[8] * classes.count(b"2")
            + weights[9] * classes.count(b"3")
            + weights[10] * classes.count(b"4")
            + weights[11] * (runs.count(b" a") + (runs[0] == 97))
        )
    hard = len(data) * _MICRO
    return units if units < hard else hard


def _bytes_micro(obj: object) -> int:
    """The hard bound for shapes we do not understand: the UTF-8 length of their JSON."""
    try:
        text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        text = repr(obj)
    return len(text.encode("utf-8", "surrogatepass")) * _MICRO
