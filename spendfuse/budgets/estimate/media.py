"""Image and PDF sizes read from the first bytes of their base64 data, without decoding it all."""

from __future__ import annotations

import base64
import binascii
import math
import re


def _tiles(width: int, height: int) -> int:
    if max(width, height) > 2048:
        scale = 2048 / max(width, height)
        width, height = math.ceil(width * scale), math.ceil(height * scale)
    if min(width, height) > 768:
        scale = 768 / min(width, height)
        width, height = math.ceil(width * scale), math.ceil(height * scale)
    return -(-width // 512) * -(-height // 512)


def _image_size(data: str) -> tuple[int, int] | None:
    """(width, height) from the header of a base64 PNG, GIF, WebP or JPEG; None when unreadable."""
    try:
        # 64 KiB of image is enough to reach a JPEG frame header behind typical EXIF blocks.
        head = base64.b64decode(data[:87_384].strip(), validate=False)
    except (binascii.Error, ValueError):
        return None
    size: tuple[int, int] | None = None
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        size = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    elif head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        size = int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        size = _webp_size(head)
    elif head[:2] == b"\xff\xd8":
        size = _jpeg_size(head)
    if size is None or size[0] <= 0 or size[1] <= 0:
        return None
    return size


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    if chunk == b"VP8 ":
        return int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    index = 2
    while index + 9 < len(head):
        if head[index] != 0xFF:
            return None
        marker = head[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            index += 2
            continue
        length = int.from_bytes(head[index + 2 : index + 4], "big")
        # Start-of-frame markers, excluding DHT (C4), JPG (C8) and DAC (CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(head[index + 7 : index + 9], "big"), int.from_bytes(
                head[index + 5 : index + 7], "big"
            )
        index += 2 + length
    return None


_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
_PDF_COUNT = re.compile(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b")


def _pdf_pages(data: str) -> int | None:
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return None
    if not raw.startswith(b"%PDF"):
        return None
    if b"/ObjStm" in raw:
        # Objects inside compressed object streams (PDF 1.5+) are invisible to a byte scan: the
        # pages counted outside them may be a few of many. Unknown, so the conservative bound.
        return None
    pages = len(_PDF_PAGE.findall(raw))
    for match in _PDF_COUNT.finditer(raw):
        pages = max(pages, int(match.group(1) or match.group(2)))
    return pages or None
