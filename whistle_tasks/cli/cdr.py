"""``whistle cdr list``: the call detail records of an account, as a table or CSV."""

from __future__ import annotations

import csv
import datetime as dt
import sys
import time

import click

from whistle_tasks.cli.table import echo
from whistle_tasks.data import cdrs
from whistle_tasks.ops import provisioning as prov


def parse_time(value: str | None, default: float) -> float:
    """``2026-11-01``, ``2026-11-01T12:00``, a Unix time, or ``-7d``/``-3h`` (ago)."""
    if not value:
        return default
    value = value.strip()
    units = {"d": 86400, "h": 3600, "m": 60}
    if value.startswith("-") and value[-1:] in units and value[1:-1].isdigit():
        return time.time() - int(value[1:-1]) * units[value[-1]]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected a date (2026-11-01), a date and time, "
                                 "a Unix time or -7d / -3h") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def _when(stamp: float | None) -> str:
    if not stamp:
        return ""
    return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@click.group("cdr")
def cdr() -> None:
    """Call detail records (one per call leg)."""


@cdr.command("list")
@click.option("--realm", required=True, help="The account's realm.")
@click.option("--since", help="From (default: the start of this month, UTC).")
@click.option("--until", help="Until, excluded (default: now).")
@click.option("--number", help="Only calls from or to this number.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout (every field).")
def cdr_list(realm: str, since: str | None, until: str | None, number: str | None,
             as_csv: bool) -> None:
    """Records of an account that ended in [--since, --until)."""
    account = prov.get_account(realm)
    now = time.time()
    month_start = cdrs.month_bounds(cdrs.month_of(now))[0]
    start, end = parse_time(since, month_start), parse_time(until, now + 1)
    if number:
        seen: dict[str, dict] = {}
        for kind in ("caller", "callee"):
            for rec in cdrs.iterate(account["_id"], start, end, **{kind: number}):
                seen[rec["id"]] = rec
        records = sorted(seen.values(), key=lambda r: (r.get("end") or 0, r["id"]))
    else:
        records = list(cdrs.iterate(account["_id"], start, end))
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(cdrs.CSV_FIELDS)
        for rec in records:
            writer.writerow(cdrs.csv_row(rec))
        return
    echo(["end", "direction", "from", "to", "dialled", "billsec", "cause", "hung up by",
          "produced", "leg"],
         [(_when(r.get("end")), r.get("direction", ""), r.get("caller_id_number", ""),
           r.get("callee_id_number", ""), r.get("dialled_number", ""),
           r.get("billing_seconds", ""), r.get("hangup_cause", ""), r.get("hung_up_by", ""),
           " ".join(r.get("produced") or ()),
           r["id"] + (" (partial)" if r.get("partial") else "")) for r in records])


def register(main: click.Group) -> None:
    main.add_command(cdr)
