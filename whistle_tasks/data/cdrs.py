"""Call detail records: where they are kept (one database per account per month) and reads.

Kazoo's "MODb" layout: the records of an account for one month live in their own
database, ``account/XX/YY/REST-YYYYMM`` (the account database's name plus the month), so a
month is dropped or archived whole (``WHISTLE_CDR_RETENTION_MONTHS``, the ``cdr.retention``
beat task) and compacted like any other database. Records of calls that carry no account
(an unknown caller refused, a malformed event) go to ``cdrs-YYYYMM``, kept the same way.

A record (``pvt_type`` ``cdr``) is one call leg, ``_id`` = the leg's call id, so a
redelivered hangup event writes no second record. Its month is the month (UTC) of the
leg's end. The writer is the ``cdr`` whapp (``whistle_tasks.whapps.cdr``); the API and the
CLI read here.

Views (``views/cdrs.json``, installed in every MODb when it is created):

* ``by_time``: key ``[end, call id]``: a time range, in order, with a unique cursor;
* ``by_caller`` / ``by_callee``: key ``[number, end, call id]``.

Listing across months walks the MODbs of the range in order, so a cursor (the last key
seen, base64 JSON) carries on in the right database.
"""

from __future__ import annotations

import base64
import calendar
import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any

from whistle_tasks.core.couch import CouchError, NotFound, account_db, get_couch
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

UNOWNED = "cdrs"  # the MODb family of records without an account
DESIGN = "cdrs"
_ACCOUNT_ID = re.compile(r"^[0-9a-f]{32}$")
# a MODb as CouchDB lists it (account/XX/YY/REST-YYYYMM), as pouchdb-server lists it
# (slashes gone) or the unowned family
_MODB = re.compile(r"^(?:account/?([0-9a-f]{2})/?([0-9a-f]{2})/?([0-9a-f]{28})|(cdrs))"
                   r"-(\d{4})(\d{2})$")

_installed: set[str] = set()


def month_of(timestamp: float) -> str:
    """``YYYYMM`` (UTC) of a Unix time."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y%m")


def modb(account_id: str | None, month: str) -> str:
    """The MODb of an account (``None``: the unowned family) for ``YYYYMM``."""
    if account_id and _ACCOUNT_ID.match(account_id):
        return f"{account_db(account_id)}-{month}"
    return f"{UNOWNED}-{month}"


def parse_modb(name: str) -> tuple[str | None, str] | None:
    """``(account id or None, YYYYMM)`` of a MODb name (either spelling), else None."""
    m = _MODB.match(name)
    if not m:
        return None
    account = None if m.group(4) else f"{m.group(1)}{m.group(2)}{m.group(3)}"
    return account, f"{m.group(5)}{m.group(6)}"


def ensure_modb(db: str) -> None:
    """Create a MODb with its views (once per process per database)."""
    if db in _installed:
        return
    couch = get_couch()
    couch.ensure_db(db)
    for ddoc in couch.design_docs("modb"):
        couch.install_design(db, ddoc)
    _installed.add(db)


def forget_modb(db: str) -> None:
    _installed.discard(db)


def months_between(since: float, until: float) -> list[str]:
    """Every ``YYYYMM`` from the month of ``since`` to that of ``until`` (inclusive)."""
    start = dt.datetime.fromtimestamp(since, dt.UTC)
    end = dt.datetime.fromtimestamp(until, dt.UTC)
    year, month, out = start.year, start.month, []
    while (year, month) <= (end.year, end.month):
        out.append(f"{year:04d}{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def month_bounds(month: str) -> tuple[float, float]:
    """Unix seconds of the first instant of ``YYYYMM`` and of the next month."""
    year, mon = int(month[:4]), int(month[4:])
    start = calendar.timegm((year, mon, 1, 0, 0, 0))
    year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)
    return float(start), float(calendar.timegm((year, mon, 1, 0, 0, 0)))


# --- cursors ------------------------------------------------------------------------------

def encode_cursor(month: str, key: list[Any]) -> str:
    raw = json.dumps([month, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class CursorError(ValueError):
    """A cursor that this server did not make."""


def decode_cursor(cursor: str) -> tuple[str, list[Any]]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        month, key = json.loads(raw)
        if not (isinstance(month, str) and re.fullmatch(r"\d{6}", month)
                and isinstance(key, list) and 2 <= len(key) <= 3):
            raise ValueError
        return month, key
    except (ValueError, TypeError) as exc:
        raise CursorError("cursor: not one this server gave out") from exc


# --- reads --------------------------------------------------------------------------------

def get(account_id: str | None, call_id: str, *, months: list[str]) -> dict[str, Any] | None:
    """The record of one leg, looked for in the MODbs of ``months`` (newest first)."""
    couch = get_couch()
    for month in sorted(months, reverse=True):
        try:
            doc = couch.get(modb(account_id, month), call_id)
        except NotFound:
            continue
        if doc.get("pvt_type") == "cdr":
            return public(doc)
    return None


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """A record as the API and the CLI show it (no ``_rev``/``pvt_*``; ``id`` = the leg)."""
    out = {k: v for k, v in doc.items() if not k.startswith(("_", "pvt_"))}
    out["id"] = doc.get("_id")
    return out


def query(account_id: str | None, since: float, until: float, *, caller: str | None = None,
          callee: str | None = None, limit: int = 100,
          cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Records of an account that ended in ``[since, until)``, oldest first.

    ``caller``/``callee`` narrow to one number (``by_caller``/``by_callee``). Returns
    ``(records, next cursor or None)``; at most ``limit`` records.
    """
    view = "by_caller" if caller else "by_callee" if callee else "by_time"
    number = caller or callee
    months = months_between(since, max(since, until - 0.000001))
    after: tuple[str, list[Any]] | None = decode_cursor(cursor) if cursor else None
    if after is not None:
        months = [m for m in months if m >= after[0]]
    out: list[dict[str, Any]] = []
    couch = get_couch()
    last: tuple[str, list[Any]] | None = None
    for index, month in enumerate(months):
        lo: list[Any] = [since] if number is None else [number, since]
        hi: list[Any] = [until] if number is None else [number, until]
        skip_key = None
        if after is not None and after[0] == month:
            lo, skip_key = after[1], after[1]
        want = limit - len(out) + 1 + (1 if skip_key else 0)
        try:
            rows = couch.view(modb(account_id, month), DESIGN, view, startkey=lo,
                              endkey=hi, include_docs=True, limit=want)
        except NotFound:
            continue
        for row in rows:
            key, doc = row["key"], row.get("doc")
            if key == skip_key or doc is None or key[-2] >= until:
                continue  # the cursor's own row; `until` is excluded
            if len(out) == limit and last is not None:
                return out, encode_cursor(*last)
            out.append(public(doc))
            last = (month, key)
        if len(out) == limit and last is not None and index < len(months) - 1:
            return out, encode_cursor(*last)  # later months may hold more
    return out, None


def iterate(account_id: str | None, since: float, until: float,
            **filters: Any) -> Iterator[dict[str, Any]]:  # noqa: ANN401
    """Every record of the range (page by page), for CSV and the CLI."""
    cursor = None
    while True:
        page, cursor = query(account_id, since, until, cursor=cursor, limit=500, **filters)
        yield from page
        if not cursor:
            return


def modbs() -> list[tuple[str, str | None, str]]:
    """``(database name, account id or None, YYYYMM)`` of every MODb on the server."""
    out = []
    try:
        names = get_couch().all_dbs()
    except CouchError as exc:
        log.error("cannot list the CDR databases: %s", exc)
        return []
    for name in names:
        parsed = parse_modb(name)
        if parsed is not None:
            out.append((name, parsed[0], parsed[1]))
    return out


CSV_FIELDS = ("id", "other_leg_call_id", "account_id", "direction", "caller_id_number",
              "caller_id_name", "callee_id_number", "callee_id_name", "dialled_number",
              "callflow_id", "node", "start", "answer", "end", "duration_seconds",
              "billing_seconds", "ringing_seconds", "hangup_cause", "hangup_code",
              "sip_status", "hung_up_by", "read_codec", "write_codec", "user_agent",
              "voicemail_message_id", "recording_id", "produced", "partial",
              "flags")


def csv_row(record: dict[str, Any]) -> list[str]:
    out = []
    for name in CSV_FIELDS:
        value = record.get(name)
        if isinstance(value, list):
            value = "; ".join(map(str, value))
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif name in ("start", "answer", "end") and isinstance(value, int | float):
            value = dt.datetime.fromtimestamp(value, dt.UTC).isoformat(timespec="seconds")
        out.append("" if value is None else str(value))
    return out
