# ruff: noqa: E501, RUF005
"""A hand-built PDF 1.5 file: an xref stream, the page tree in a compressed object stream."""

from __future__ import annotations

import struct
import zlib


def linearized_like_pdf(pages: int) -> bytes:
    """PDF 1.5: page 1 as a plain object (as linearized files keep it), the page tree and the other
    pages inside a compressed object stream, cross-referenced by an xref stream."""
    content_id, first_id, pages_id, catalog_id = 1, 2, 3, 4
    other_ids = list(range(5, 5 + pages - 1))
    objstm_id = 5 + pages - 1
    xref_id = objstm_id + 1
    kids = " ".join(f"{i} 0 R" for i in [first_id] + other_ids)
    compressed = {
        catalog_id: f"<< /Type /Catalog /Pages {pages_id} 0 R >>",
        pages_id: f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>",
    }
    for i in other_ids:
        compressed[i] = f"<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R >>"
    header, body, offset = [], [], 0
    for num, text in compressed.items():
        header.append(f"{num} {offset}")
        body.append(text)
        offset += len(text) + 1
    head = " ".join(header) + " "
    raw = (head + "\n".join(body)).encode()
    stream = zlib.compress(raw)
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    text = b"BT /F1 12 Tf 72 720 Td (Hello) Tj ET"
    offsets[content_id] = len(out)
    out += f"{content_id} 0 obj\n<< /Length {len(text)} >>\nstream\n".encode() + text + b"\nendstream\nendobj\n"
    offsets[first_id] = len(out)
    out += f"{first_id} 0 obj\n<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R >>\nendobj\n".encode()
    offsets[objstm_id] = len(out)
    out += (
        f"{objstm_id} 0 obj\n<< /Type /ObjStm /N {len(compressed)} /First {len(head)} /Filter /FlateDecode /Length {len(stream)} >>\nstream\n".encode()
        + stream
        + b"\nendstream\nendobj\n"
    )
    # xref stream: type 1 (offset) / type 2 (in objstm index)
    rows = [struct.pack(">BIH", 0, 0, 65535)]
    index_in = {num: i for i, num in enumerate(compressed)}
    offsets[xref_id] = len(out)
    for num in range(1, xref_id + 1):
        if num in index_in:
            rows.append(struct.pack(">BIH", 2, objstm_id, index_in[num]))
        else:
            rows.append(struct.pack(">BIH", 1, offsets[num], 0))
    xdata = zlib.compress(b"".join(rows))
    out += (
        f"{xref_id} 0 obj\n<< /Type /XRef /Size {xref_id + 1} /W [1 4 2] /Root {catalog_id} 0 R /Filter /FlateDecode /Length {len(xdata)} >>\nstream\n".encode()
        + xdata
        + b"\nendstream\nendobj\n"
    )
    out += f"startxref\n{offsets[xref_id]}\n%%EOF\n".encode()
    return bytes(out)
