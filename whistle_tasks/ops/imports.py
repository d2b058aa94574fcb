"""Bulk provisioning from CSV files: devices and numbers (``whistle device|number import``).

A file is read whole first (10,000 rows are a few MB), so the caller knows the row count
for a progress bar and every file-level problem (not UTF-8, no header, a missing column) is
reported before anything is written. Row-level problems never stop an import: each row ends
``created``, ``skipped`` (it exists already, or repeats an earlier row of the file) or
``failed`` with a reason, under its line number in the file (header = line 1). A number is
a one-node callflow, as ``whistle number add`` writes it.

Parsing: the ``csv`` module, UTF-8 with or without a BOM, whitespace stripped from names and
values, header names case-insensitive with spaces and ``-`` read as ``_`` ("A1-Hash" is
``a1_hash``). A row with the wrong number of columns fails; a blank line is ignored.

Writes are bulk: devices through :func:`provisioning.create_devices` (``_bulk_docs`` per
realm), numbers through :func:`import_numbers` below, which does what
:func:`provisioning.add_number` does for one number (same checks, same document, same change
broadcast) for many at once: per row, ``add_number`` costs two view look-ups, a read, a
write and a fresh AMQP connection.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whistle_tasks.core import changes
from whistle_tasks.core.convert import to_bool
from whistle_tasks.core.couch import CouchError, get_couch
from whistle_tasks.core.log import get_logger
from whistle_tasks.data import callflows
from whistle_tasks.ops import callflows as cf_ops
from whistle_tasks.ops import provisioning as prov

log = get_logger(__name__)

Progress = Callable[[int], None]

DEVICE_COLUMNS = ("realm", "username", "password", "a1_hash", "name", "caller_id_name",
                  "caller_id_number", "enabled")
NUMBER_COLUMNS = ("realm", "number", "to", "format")
CHUNK = 500


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (encoding, header); nothing was written."""


@dataclass(frozen=True)
class RowResult:
    """The outcome of one row: ``created``, ``skipped`` or ``failed``, with why."""

    line: int
    outcome: str
    reason: str = ""


@dataclass
class CsvTable:
    """A parsed file: its columns, the well-formed rows by line, the malformed ones."""

    columns: list[str]
    rows: list[tuple[int, dict[str, str]]]
    bad: list[RowResult] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows) + len(self.bad)


@dataclass
class ImportSummary:
    """Every row's outcome, in line order, and how long the import took."""

    results: list[RowResult]
    seconds: float = 0.0

    def count(self, outcome: str) -> int:
        return sum(r.outcome == outcome for r in self.results)

    @property
    def created(self) -> int:
        return self.count("created")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def failed(self) -> int:
        return self.count("failed")

    def problems(self) -> list[RowResult]:
        """The rows that were not created, in line order."""
        return [r for r in self.results if r.outcome != "created"]


# --- reading -----------------------------------------------------------------------------

def _column_name(raw: str) -> str:
    return raw.strip().lower().replace("-", "_").replace(" ", "_")


def read_csv(source: str | Path | bytes, known: Iterable[str],
             required: Iterable[str | tuple[str, ...]] = ()) -> CsvTable:
    """Parse a CSV file (a path, or its bytes) with a header row.

    ``known`` are the accepted columns (others are an error: a typo such as ``passwd`` must
    not be silently ignored); each ``required`` entry is a column, or a tuple of which at
    least one must be present. Raises :class:`ImportFileError`.
    """
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ImportFileError(f"not UTF-8 text (line {line}, byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    header: list[str] | None = None
    header_line = 0
    rows: list[tuple[int, dict[str, str]]] = []
    bad: list[RowResult] = []
    last_line = 0
    while True:
        start = last_line + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if reader.line_num == last_line:  # the reader cannot move on
                bad.append(RowResult(start, "failed", f"unreadable CSV: {exc}"))
                break
            last_line = reader.line_num
            bad.append(RowResult(start, "failed", f"unreadable CSV: {exc}"))
            continue
        last_line = reader.line_num
        values = [v.strip() for v in record]
        if not any(values):
            continue  # a blank line
        if header is None:
            header, header_line = [_column_name(v) for v in values], start
            _check_header(header, known, required)
            continue
        if len(values) != len(header):
            bad.append(RowResult(start, "failed",
                                 f"expected {len(header)} columns, found {len(values)}"))
            continue
        rows.append((start, dict(zip(header, values, strict=True))))
    if header is None:
        raise ImportFileError("empty file: a header row is required")
    if header_line != 1:
        log.info("CSV header found on line %d (blank lines before it)", header_line)
    return CsvTable(header, rows, bad)


def _check_header(header: list[str], known: Iterable[str],
                  required: Iterable[str | tuple[str, ...]]) -> None:
    known = tuple(known)
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise ImportFileError(f"column {', '.join(dupes)} appears twice in the header")
    unknown = [c for c in header if c not in known]
    if unknown:
        raise ImportFileError(f"unknown column {', '.join(repr(c) for c in unknown)} "
                              f"(known: {', '.join(known)})")
    for need in required:
        options = need if isinstance(need, tuple) else (need,)
        if not any(c in header for c in options):
            raise ImportFileError(f"missing column {' or '.join(options)}")


def read_devices(source: str | Path | bytes, realm: str | None = None) -> CsvTable:
    """A devices file: ``username``, ``password`` or ``a1_hash``, ``realm`` unless given."""
    required: list[str | tuple[str, ...]] = ["username", ("password", "a1_hash")]
    if not realm:
        required.insert(0, "realm")
    return read_csv(source, DEVICE_COLUMNS, required)


def read_numbers(source: str | Path | bytes, realm: str | None = None) -> CsvTable:
    """A numbers file: ``number``, ``to``, optional ``format``, ``realm`` unless given."""
    required: list[str | tuple[str, ...]] = ["number", "to"]
    if not realm:
        required.insert(0, "realm")
    return read_csv(source, NUMBER_COLUMNS, required)


# --- shared steps ------------------------------------------------------------------------

def _by_realm(table: CsvTable, realm: str | None,
              fail: Callable[[int, str], None]) -> dict[str, list[tuple[int, dict[str, str]]]]:
    """Rows grouped by their realm (the row's own, else ``realm``), first-seen order."""
    groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for line, row in table.rows:
        row_realm = (row.get("realm") or realm or "").strip().lower()
        if not row_realm:
            fail(line, "no realm (empty realm column and no --realm)")
            continue
        groups.setdefault(row_realm, []).append((line, row))
    return groups


def _account(realm: str) -> tuple[dict[str, Any] | None, str]:
    try:
        return prov.get_account(realm), ""
    except prov.ProvisioningError as exc:
        return None, str(exc)


class _Outcomes:
    """Collects row results and drives the progress callback (once per batch of rows, not
    per row: a terminal progress bar redrawn 10,000 times costs more than the import)."""

    def __init__(self, table: CsvTable, progress: Progress | None) -> None:
        self.results: list[RowResult] = []
        self.progress = progress
        self.started = time.monotonic()
        self._unreported = 0
        for bad in table.bad:
            self.add(bad.line, bad.outcome, bad.reason)

    def add(self, line: int, outcome: str, reason: str = "") -> None:
        self.results.append(RowResult(line, outcome, reason))
        self._unreported += 1

    def tick(self) -> None:
        """Report the rows decided since the last tick."""
        if self.progress is not None and self._unreported:
            self.progress(self._unreported)
        self._unreported = 0

    def fail(self, line: int, reason: str) -> None:
        self.add(line, "failed", reason)

    def summary(self) -> ImportSummary:
        self.tick()
        return ImportSummary(sorted(self.results, key=lambda r: r.line),
                             time.monotonic() - self.started)


# --- devices -----------------------------------------------------------------------------

def _device_row(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as :func:`provisioning.create_devices` takes it; raises ProvisioningError."""
    out: dict[str, Any] = {"username": row.get("username", ""),
                           "password": row.get("password") or None,
                           "a1_hash": row.get("a1_hash") or None,
                           "name": row.get("name") or None}
    caller_id = {k: row[f"caller_id_{k}"] for k in ("name", "number")
                 if row.get(f"caller_id_{k}")}
    if caller_id:
        out["caller_id"] = caller_id
    if row.get("enabled"):
        enabled = to_bool(row["enabled"])
        if enabled is None:
            raise prov.ProvisioningError(f"enabled must be true or false, not {row['enabled']!r}")
        out["enabled"] = enabled
    return out


def import_devices(table: CsvTable, realm: str | None = None,
                   progress: Progress | None = None, chunk: int | None = None) -> ImportSummary:
    """Create the devices of a parsed file (see :func:`read_devices`).

    Rows of an unknown realm fail; a username already in the realm, or repeated in the
    file, is skipped. Never raises for a row; a CouchDB failure fails the rows of the chunk
    it hit, and the import carries on.

    ``create_devices`` is called per ``chunk`` rows (the progress steps). Each call reads
    the realm's existing devices again, so the default keeps calls few on big files: 500
    rows, or an eighth of the realm's rows when that is more (10,000 devices on
    pouchdb-server: 33 s in 500-row calls, 18 s in eighths, 17 s in one call).
    """
    out = _Outcomes(table, progress)
    for row_realm, rows in _by_realm(table, realm, out.fail).items():
        account, problem = _account(row_realm)
        if account is None:
            for line, _ in rows:
                out.fail(line, problem)
            continue
        seen: dict[str, int] = {}
        todo: list[tuple[int, dict[str, Any]]] = []
        for line, row in rows:
            try:
                device = _device_row(row)
            except prov.ProvisioningError as exc:
                out.fail(line, str(exc))
                continue
            username = str(device["username"]).strip().lower()
            if username in seen:
                out.add(line, "skipped", f"duplicate of line {seen[username]} "
                                         f"({username}@{row_realm})")
                continue
            if username:
                seen[username] = line
            todo.append((line, device))
        step = chunk or max(CHUNK, -(-len(todo) // 8))
        for start in range(0, len(todo), step):
            batch = todo[start:start + step]
            try:
                results = prov.create_devices(row_realm, [d for _, d in batch])
            except (CouchError, prov.ProvisioningError) as exc:
                log.error("device import into %s: %s", row_realm, exc)
                for line, _ in batch:
                    out.fail(line, f"not written: {exc}")
                continue
            for index, outcome, reason in results:
                out.add(batch[index][0], outcome, reason)
            out.tick()
    summary = out.summary()
    log.info("device import: %d created, %d skipped, %d failed in %.1fs", summary.created,
             summary.skipped, summary.failed, summary.seconds)
    return summary


# --- numbers -----------------------------------------------------------------------------

def _number_doc(account: dict[str, Any], row: dict[str, str],
                devices: set[str]) -> dict[str, Any]:
    """The one-node callflow of a row, checked as :func:`provisioning.add_number` checks."""
    to = prov.parse_target(row.get("to", ""))
    fmt = (row.get("format") or "").strip().lower()
    if fmt:
        to["invite_format"] = prov.check_invite_format(fmt)
    key = prov.normalize_number(row.get("number", ""), account.get("number_format", "e164"))
    if to["type"] == "device" and to["username"] not in devices:
        raise prov.ProvisioningError(f"unknown device {to['username']}@{account['realm']}")
    try:
        return cf_ops.number_callflow(account, key, to)
    except cf_ops.CallflowInvalid as exc:
        raise prov.ProvisioningError("; ".join(
            f"{path}: {', '.join(reasons)}" for path, reasons in exc.errors.items())) from None


def _existing(db: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """``{id: doc}`` of the ids that exist (not deleted) in ``db``, one request."""
    if not ids:
        return {}
    couch = get_couch()
    resp = couch.request("POST", f"{couch.db_url(db)}/_all_docs", what=f"all_docs {db}",
                         params={"include_docs": "true"}, json={"keys": ids})
    return {row["id"]: row["doc"] for row in resp.json()["rows"]
            if row.get("doc") and not row.get("value", {}).get("deleted")}


def import_numbers(table: CsvTable, realm: str | None = None,
                   progress: Progress | None = None, chunk: int = CHUNK) -> ImportSummary:
    """Assign the numbers of a parsed file (see :func:`read_numbers`).

    A number already assigned in its realm (and not soft-deleted) is skipped, as is one
    repeated in the file (after normalisation to the account's number format), so running
    the same file twice is harmless. A ``device:USER`` target must exist. Every created
    number is broadcast (``doc_created`` ``number``) as :func:`provisioning.add_number`
    does, on the process's confirming connection.
    """
    out = _Outcomes(table, progress)
    couch = get_couch()
    broadcaster = _Broadcaster()
    for row_realm, rows in _by_realm(table, realm, out.fail).items():
        account, problem = _account(row_realm)
        if account is None:
            for line, _ in rows:
                out.fail(line, problem)
            continue
        try:
            devices = {row["key"][1] for row in couch.view(
                "sip_auth", "credentials", "by_realm_user",
                startkey=[account["realm"]], endkey=[account["realm"], {}])}
        except CouchError as exc:
            for line, _ in rows:
                out.fail(line, f"not written: {exc}")
            continue
        seen: dict[str, int] = {}
        todo: list[tuple[int, dict[str, Any]]] = []
        for line, row in rows:
            try:
                doc = _number_doc(account, row, devices)
            except prov.ProvisioningError as exc:
                out.fail(line, str(exc))
                continue
            number = doc["numbers"][0]
            if number in seen:
                out.add(line, "skipped", f"duplicate of line {seen[number]} ({number})")
                continue
            seen[number] = line
            todo.append((line, doc))
        for start in range(0, len(todo), chunk):
            _write_numbers(account, todo[start:start + chunk], out, broadcaster)
            out.tick()
    if broadcaster.unsent:
        log.error("number import: %d change broadcasts not sent", broadcaster.unsent)
    summary = out.summary()
    log.info("number import: %d created, %d skipped, %d failed in %.1fs", summary.created,
             summary.skipped, summary.failed, summary.seconds)
    return summary


class _Broadcaster:
    """Change broadcasts of one import (the process's confirming connection).

    The numbers are stored whatever happens here. After the first failure (RabbitMQ away,
    after kombu's retries) no more is tried, so an outage costs one retry budget, not one
    per number; caches that missed the broadcast expire their entries by TTL.
    """

    def __init__(self) -> None:
        self.unsent = 0

    def send(self, action: str, account: dict[str, Any], doc_id: str) -> None:
        if self.unsent:
            self.unsent += 1
            return
        try:
            changes.broadcast(action, "callflow", doc_id, realm=account["realm"],
                              account_id=account["_id"])
        except Exception as exc:
            self.unsent = 1
            log.error("number import: change broadcast failed, no more will be sent (caches "
                      "expire the old answers by TTL): %s", exc)


def _write_numbers(account: dict[str, Any], batch: list[tuple[int, dict[str, Any]]],
                   out: _Outcomes, broadcaster: _Broadcaster) -> None:
    db = account["pvt_account_db"]
    couch = get_couch()
    try:
        existing = _existing(db, [doc["_id"] for _, doc in batch])
    except CouchError as exc:
        log.error("number import into %s: %s", account["realm"], exc)
        for line, _ in batch:
            out.fail(line, f"not written: {exc}")
        return
    try:
        owners = {row["key"]: row["id"] for row in couch.view(
            db, "numbers", "by_number", keys=[doc["numbers"][0] for _, doc in batch])}
    except CouchError as exc:
        log.error("number import into %s: %s", account["realm"], exc)
        for line, _ in batch:
            out.fail(line, f"not written: {exc}")
        return
    docs: list[tuple[int, dict[str, Any]]] = []
    for line, doc in batch:
        old = existing.get(doc["_id"])
        number = doc["numbers"][0]
        if (old is not None and not old.get("pvt_deleted")) or number in owners:
            out.add(line, "skipped",
                    f"number {number} is already assigned in {account['realm']}")
            continue
        if old is not None:
            doc["_rev"] = old["_rev"]
        docs.append((line, doc))
    try:
        written = couch.bulk_docs(db, [doc for _, doc in docs])
    except CouchError as exc:
        log.error("number import into %s: %s", account["realm"], exc)
        for line, _ in docs:
            out.fail(line, f"not written: {exc}")
        return
    callflows.forget(account["_id"], None, [doc["numbers"][0] for _, doc in docs], shared=True)
    for (line, doc), result in zip(docs, written, strict=True):
        if result.get("error"):
            out.fail(line, f"{result['error']}: {result.get('reason')}")
            continue
        broadcaster.send("edited" if "_rev" in doc else "created", account, doc["_id"])
        out.add(line, "created")
