"""CouchDB compaction by Kazoo 4.x's rule, for the beat task and ``whistle compact``.

The rule (docs/design.md "CouchDB"): compact a database when its live data is over
``compact_min_data`` bytes AND the share of its file that is not live data,
``(disk - data) / disk``, is over ``compact_min_ratio``; at most ``compact_parallel``
databases compact at a time, each followed by its design-document views and
``_view_cleanup``. Compacting copies live data into a new file, so it is only worth its
I/O when there is enough to reclaim.

Where the sizes come from, and what we do when there is no data size:

* Apache CouchDB 2/3: ``sizes.file`` (disk) and ``sizes.active`` (data): ``reported``.
* CouchDB 1.x: ``disk_size`` and ``data_size``: ``reported``.
* pouchdb-server reports only ``disk_size`` (the size of its LevelDB folder), with
  ``doc_count`` and ``update_seq``. For a database of at most ``estimate_max_docs`` live
  documents we *estimate* the data size as the compact-JSON bytes of its live documents
  (``_all_docs?include_docs=true``, read page by page); bigger ones are ``unknown`` and
  skipped unless forced. The source is shown next to every size ("estimated"/"unknown").
  LevelDB's own overhead (sequence index, revision trees, write-ahead log) is counted as
  waste by that estimate: a fresh pouchdb database already shows 50-60 % "waste" that no
  compaction reclaims. So, for estimated sizes only, a database in which nothing was
  written since our last compaction of it (same ``update_seq``, remembered in Redis) is
  skipped: otherwise every run would compact every pouchdb database again for nothing.

The compaction request returns at once on CouchDB (the work runs in the background): we
poll the database's ``compact_running`` (and the view index's, for design documents)
before taking the next database, so the parallelism bound is real. pouchdb-server answers
only when its compaction is done and never reports ``compact_running``. It also answers
``POST /db/_compact/<ddoc>`` with HTTP 400: that is logged once per process and view
compaction is not tried again on that server (its view indexes are not compacted).

One run at a time across every worker and CLI: a Redis lock (``whistle:lock:compaction``)
with a TTL that the running compaction keeps renewing, so a dead worker cannot hold it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import LockError, RedisError

from whistle_tasks.core.config import settings
from whistle_tasks.core.couch import Couch, CouchError, NotFound, get_couch
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

LOCK_NAME = "whistle:lock:compaction"
LOCK_TTL_S = 120            # renewed every LOCK_TTL_S / 4 while a run lasts
SEQ_KEY = "whistle:compaction:seq:"   # + real db name -> update_seq after our compaction
SEQ_TTL_S = 30 * 24 * 3600
ESTIMATE_MAX_DOCS = 50_000  # above this a missing data size stays unknown (reading is costly)
ESTIMATE_PAGE = 1000
POLL_S = 0.5
WAIT_TIMEOUT_S = 6 * 3600   # a compaction still running after this is reported as failed

# account databases as pouchdb-server lists them: "account/XX/YY/REST" with the slashes gone
_SANITISED_ACCOUNT = re.compile(r"^account([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{28})$")

# servers (by URL) that answered 400 to POST /db/_compact/<ddoc>: asked no more
_no_view_compaction: set[str] = set()
_no_view_lock = threading.Lock()


@dataclass
class Report:
    """What happened to one database (``action``: compacted, skipped, failed or locked)."""

    db: str
    action: str
    reason: str = ""
    data_source: str = ""        # reported | estimated | unknown
    disk_before: int | None = None
    data_before: int | None = None
    disk_after: int | None = None
    data_after: int | None = None
    views: str = ""              # what happened to the design documents' views
    seconds: float = 0.0

    @property
    def outcome(self) -> str:
        """``compacted`` or ``skipped (reason)`` / ``failed (reason)``, for tables and logs."""
        return f"{self.action} ({self.reason})" if self.reason else self.action


# --- the rule ----------------------------------------------------------------------------

def should_compact(disk: int | None, data: int | None, min_data: int | None = None,
                   min_ratio: float | None = None) -> tuple[bool, str]:
    """Kazoo's rule on one ``(disk, data)`` pair: ``(compact?, why)``.

    Both thresholds are strict ("over"): data of exactly ``min_data`` bytes, or a waste of
    exactly ``min_ratio``, is not compacted. An unknown size is never compacted here.
    """
    min_data = settings.compact_min_data if min_data is None else min_data
    min_ratio = settings.compact_min_ratio if min_ratio is None else min_ratio
    if disk is None or data is None:
        return False, "data size unknown"
    if data <= min_data:
        return False, f"data {human(data)} <= {human(min_data)}"
    if disk <= 0:
        return False, "empty file"
    waste = (disk - data) / disk
    if waste <= min_ratio:
        return False, f"waste {waste:.0%} <= {min_ratio:.0%}"
    return True, f"data {human(data)}, waste {waste:.0%}"


def reported_sizes(info: dict[str, Any]) -> tuple[int | None, int | None]:
    """``(disk, data)`` as the server reports them (``None`` where it does not)."""
    sizes = info.get("sizes")
    if isinstance(sizes, dict) and isinstance(sizes.get("file"), int):
        active = sizes.get("active")
        return sizes["file"], active if isinstance(active, int) else None
    disk, data = info.get("disk_size"), info.get("data_size")
    return (disk if isinstance(disk, int) else None, data if isinstance(data, int) else None)


def estimate_data_size(couch: Couch, db: str, page: int = ESTIMATE_PAGE) -> int:
    """Bytes of the live documents of ``db`` as compact JSON (what CouchDB calls external).

    Read page by page, so memory stays bounded whatever the database's size.
    """
    total = 0
    start: str | None = None
    while True:
        params: dict[str, Any] = {"include_docs": True, "limit": page + 1}
        if start is not None:
            params["startkey"] = start
        rows = couch.all_docs(db, **params)
        for row in rows[:page]:
            doc = row.get("doc")
            if doc is not None:
                total += len(json.dumps(doc, separators=(",", ":")).encode())
        if len(rows) <= page:
            return total
        start = rows[page]["id"]


def measure(couch: Couch, db: str, info: dict[str, Any],
            estimate_max_docs: int = ESTIMATE_MAX_DOCS) -> tuple[int | None, int | None, str]:
    """``(disk, data, source)``; source is ``reported``, ``estimated`` or ``unknown``."""
    disk, data = reported_sizes(info)
    if data is not None:
        return disk, data, "reported"
    docs = info.get("doc_count")
    if isinstance(docs, int) and docs <= estimate_max_docs:
        return disk, estimate_data_size(couch, db), "estimated"
    return disk, None, "unknown"


def display_name(name: str) -> str:
    """The logical name of a database: pouchdb's ``account<hex>`` back to ``account/XX/YY/REST``.

    pouchdb-server lists account databases without their slashes; both spellings address
    the same database there, and CouchDB lists the slashed one itself.
    """
    m = _SANITISED_ACCOUNT.match(name)
    return f"account/{m.group(1)}/{m.group(2)}/{m.group(3)}" if m else name


def human(n: int | None) -> str:
    """``1536`` → ``1.5 KiB``; None → ``?``."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - unreachable


# --- one database ------------------------------------------------------------------------

def _wait_idle(couch: Couch, url: str, what: str, flag: tuple[str, ...],
               timeout: float) -> None:
    """Poll ``url`` until the JSON flag at ``flag`` is false (absent counts as done)."""
    deadline = time.monotonic() + timeout
    while True:
        body: Any = couch.request("GET", url, what=what).json()
        for key in flag:
            body = body.get(key) if isinstance(body, dict) else None
        if not body:
            return
        if time.monotonic() > deadline:
            raise CouchError(f"{what}: still compacting after {timeout:.0f}s")
        time.sleep(POLL_S)


def _design_ids(couch: Couch, db: str) -> list[str]:
    rows = couch.all_docs(db, startkey="_design/", endkey="_design0")
    return [row["id"][len("_design/"):] for row in rows]


def _compact_views(couch: Couch, db: str, timeout: float) -> str:
    """Compact every design document's views; returns what to show in the report."""
    if couch.server_url in _no_view_compaction:
        return "not supported by server"
    done = 0
    for design in _design_ids(couch, db):
        try:
            couch.compact_design(db, design)
        except NotFound:
            continue  # a design document without views
        except CouchError as exc:
            if exc.status != 400:
                raise
            with _no_view_lock:
                first = couch.server_url not in _no_view_compaction
                _no_view_compaction.add(couch.server_url)
            if first:
                log.info("this CouchDB server does not compact design-document views "
                         "(HTTP 400 on _compact/<ddoc>: %s); view compaction skipped", exc)
            return "not supported by server"
        url = f"{couch.doc_url(db, '_design/' + design)}/_info"
        _wait_idle(couch, url, f"view info {db}/_design/{design}",
                   ("view_index", "compact_running"), timeout)
        done += 1
    return f"{done} compacted" if done else "none"


def _seq_key(couch: Couch, db: str) -> str:
    return SEQ_KEY + couch.real_name(db)


def compact_one(couch: Couch, db: str, force: bool = False, *,
                redis_client: redis.Redis | None = None, missing_ok: bool = False,
                estimate_max_docs: int = ESTIMATE_MAX_DOCS,
                timeout: float = WAIT_TIMEOUT_S) -> Report:
    """Decide on one database and compact it if the rule (or ``force``) says so.

    Never raises for a CouchDB problem: it is the report's ``failed`` reason. A database
    that does not exist fails, unless ``missing_ok`` (it was listed by ``_all_dbs`` and
    deleted since: skipped).
    """
    name = display_name(db)
    report = Report(db=name, action="skipped")
    started = time.monotonic()
    try:
        info = couch.db_info(name)
        disk, data, source = measure(couch, name, info, estimate_max_docs)
        report.disk_before, report.data_before, report.data_source = disk, data, source
        go, why = should_compact(disk, data)
        if source == "unknown":
            why = (f"data size unknown (server reports none; over {estimate_max_docs} docs "
                   "to estimate)")
        if go and source == "estimated" and redis_client is not None:
            last = _last_seq(redis_client, couch, name)
            if last is not None and last == json.dumps(info.get("update_seq")):
                go, why = False, "nothing written since the last compaction"
        if not go and not force:
            report.reason = why
            report.disk_after, report.data_after = disk, data
            return report
        couch.compact(name)
        _wait_idle(couch, couch.db_url(name), f"info {name}", ("compact_running",), timeout)
        report.views = _compact_views(couch, name, timeout)
        couch.view_cleanup(name)
        after = couch.db_info(name)
        report.disk_after, data_after = reported_sizes(after)
        report.data_after = data_after if source == "reported" else data
        report.action = "compacted"
        report.reason = f"forced; rule: {why}" if force and not go else ""
        if redis_client is not None and source != "reported":
            _remember_seq(redis_client, couch, name, after.get("update_seq"))
        log.info("compacted %s: disk %s -> %s (data %s, %s)", name, human(disk),
                 human(report.disk_after), human(data), source)
    except NotFound:
        report.action = "skipped" if missing_ok else "failed"
        report.reason = "deleted during the run" if missing_ok else "no such database"
    except CouchError as exc:
        report.action, report.reason = "failed", str(exc)
        log.error("compaction of %s failed: %s", name, exc)
    finally:
        report.seconds = time.monotonic() - started
    return report


def _last_seq(client: redis.Redis, couch: Couch, db: str) -> str | None:
    try:
        value = client.get(_seq_key(couch, db))
    except RedisError as exc:
        log.warning("compaction: cannot read the last compacted seq of %s: %s", db, exc)
        return None
    return value.decode() if isinstance(value, bytes) else value


def _remember_seq(client: redis.Redis, couch: Couch, db: str, seq: Any) -> None:  # noqa: ANN401
    try:
        client.set(_seq_key(couch, db), json.dumps(seq), ex=SEQ_TTL_S)
    except RedisError as exc:
        log.warning("compaction: cannot remember the compacted seq of %s: %s", db, exc)


# --- a whole run ---------------------------------------------------------------------------

def redis_client() -> redis.Redis:
    """A client for the compaction lock (the cache's Redis, settings.redis_url)."""
    return redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)


@contextmanager
def run_lock(client: redis.Redis, ttl: float = LOCK_TTL_S) -> Iterator[Any]:
    """Hold the compaction lock, or yield None when another run holds it."""
    lock = client.lock(LOCK_NAME, timeout=ttl, blocking=False, thread_local=False)
    if not lock.acquire():
        yield None
        return
    try:
        yield lock
    finally:
        try:
            lock.release()
        except LockError:
            log.warning("compaction lock had expired before the run ended")


def compact(dbs: list[str] | None = None, force: bool = False, *,
            parallel: int | None = None, couch: Couch | None = None,
            estimate_max_docs: int = ESTIMATE_MAX_DOCS) -> list[Report]:
    """Compact ``dbs`` (default: every database under our prefix) by the rule, or all of
    them with ``force``; one report per database, in name order.

    When another run holds the lock, returns a single report with action ``locked``.
    """
    couch = couch or get_couch()
    parallel = max(1, settings.compact_parallel if parallel is None else parallel)
    client = redis_client()
    try:
        with run_lock(client) as lock:
            if lock is None:
                log.info("compaction already running elsewhere (lock %s held); not starting",
                         LOCK_NAME)
                return [Report(db="*", action="locked",
                               reason="another compaction run holds the lock")]
            names = sorted({display_name(n) for n in (dbs if dbs else couch.all_dbs())})
            return _run(couch, names, force, parallel, client, lock, estimate_max_docs,
                        listed=not dbs)
    except RedisError as exc:
        log.error("compaction not started: Redis unavailable for the lock: %s", exc)
        return [Report(db="*", action="failed", reason=f"Redis unavailable for the lock: {exc}")]
    except CouchError as exc:
        log.error("compaction not started: %s", exc)
        return [Report(db="*", action="failed", reason=str(exc))]


def _run(couch: Couch, names: list[str], force: bool, parallel: int, client: redis.Redis,
         lock: Any, estimate_max_docs: int, listed: bool) -> list[Report]:  # noqa: ANN401
    reports: dict[str, Report] = {}
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="compact") as pool:
        pending: set[Future[Report]] = {
            pool.submit(compact_one, couch, name, force, redis_client=client,
                        missing_ok=listed, estimate_max_docs=estimate_max_docs)
            for name in names}
        while pending:
            done, pending = wait(pending, timeout=LOCK_TTL_S / 4, return_when=FIRST_COMPLETED)
            for future in done:
                report = future.result()
                reports[report.db] = report
            try:
                lock.reacquire()
            except (LockError, RedisError) as exc:
                log.warning("compaction lock could not be renewed: %s", exc)
    return [reports[name] for name in names]
