"""Plain-text tables (the CLI prints them; so does the supervisor's status)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def render(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    rows = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=False)]
    line = "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=False))
    out = [line.rstrip()]
    for row in rows:
        out.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)).rstrip())
    return "\n".join(out)
