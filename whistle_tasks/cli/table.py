"""Readable tables for the CLI (the layout is :func:`whistle_tasks.ops.table.render`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import click

from whistle_tasks.ops.table import render


def echo(headers: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "(none)") -> None:
    rows = list(rows)
    if not rows:
        click.echo(empty)
        return
    click.echo(render(headers, rows))


def mask(secret: str | None, show: bool) -> str:
    if not secret:
        return ""
    return secret if show else "****"
