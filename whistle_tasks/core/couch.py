"""CouchDB access for every whapp (the seed's ``whistle_couch``), over the ``cloudant`` client.

``cloudant`` holds the session (admin party, or basic auth from the URL) and builds the
database URLs; this module adds what Whistle needs on top:

* one client per process (re-made after ``fork``), databases created on first use;
* clear errors: :class:`NotFound`, :class:`Conflict`, :class:`Unavailable` (after retries);
* retries with exponential back-off for transient failures (connection refused or reset,
  timeouts, 5xx, 429), bounded in time;
* once CouchDB has not answered through a whole retry loop, it is taken as down: for
  ``DOWN_RETRY_S`` every request fails at once with :class:`Unavailable`, and after that
  one attempt (no retry loop) probes it again, until one succeeds ("CouchDB is back").
  Without this every caller spent its own retry loop (~1.5 s) on a server that is gone:
  measured in tests/test_faults.py, registrar threads busy retrying reg_success and
  unknown users left 8 of 80 cached, known users unanswered within the 2.5 s budget;
* the design documents of ``views/`` loaded or updated when a worker starts, only when
  they changed;
* database names go through ``settings.couch_db`` (the test prefix) exactly once, here.

Only the API that both Apache CouchDB 3 and pouchdb-server serve is used.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from cloudant.client import CouchDB
from cloudant.database import CouchDatabase
from requests.adapters import HTTPAdapter

from whistle_tasks.core.config import redact_url, settings
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

VIEWS_DIR = Path(__file__).resolve().parents[2] / "views"
#: ``whistle_databases`` entries that name a kind of database, not one database
KINDS = ("account", "modb")
SYSTEM_DATABASES = ("accounts", "sip_auth", "registrations", "numbers", "system_config",
                    "system_media")


class CouchError(Exception):
    """A CouchDB request failed; ``status`` is the HTTP status (0 when none)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class NotFound(CouchError):
    """The database or document does not exist (HTTP 404)."""


class Conflict(CouchError):
    """The document changed since it was read (HTTP 409), or already exists."""


class Unavailable(CouchError):
    """CouchDB did not answer, or kept failing, within the retry budget."""


def account_db(account_id: str) -> str:
    """Kazoo's account database name: ``account/XX/YY/REST`` of a 32-hex account id."""
    return f"account/{account_id[0:2]}/{account_id[2:4]}/{account_id[4:]}"


_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
DOWN_RETRY_S = 1.0  # while CouchDB is down, requests fail at once for this long, then probe


class Couch:
    """A CouchDB server. Use :func:`get_couch` for the process's shared instance."""

    def __init__(self, url: str | None = None, prefix: str | None = None, *,
                 retries: int = 5, backoff: float = 0.05, retry_budget: float = 10.0,
                 timeout: tuple[float, float] = (3.0, 120.0)) -> None:
        self.url = (url or settings.couch_url).rstrip("/")
        self.prefix = settings.couch_prefix if prefix is None else prefix
        self.retries = retries
        self.backoff = backoff
        self.retry_budget = retry_budget
        self.timeout = timeout
        self._client = CouchDB(None, None, url=self.url, admin_party=True, connect=False,
                               timeout=timeout)
        if "@" in self.url.split("//", 1)[-1]:
            # credentials in the URL: basic auth on every request (no cookie session to renew)
            self._client = CouchDB(None, None, url=self.url, use_basic_auth=True, connect=False,
                                   timeout=timeout)
        self._client.connect()
        # a bounded pool that makes callers wait for a connection rather than open more:
        # a storm of cache misses must queue here, not pile onto CouchDB
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, pool_block=True)
        self._client.r_session.mount("http://", adapter)
        self._client.r_session.mount("https://", adapter)
        self.session: requests.Session = self._client.r_session
        self.server_url: str = self._client.server_url.rstrip("/")
        self._known_dbs: set[str] = set()
        self._lock = threading.Lock()
        # outage state (see the module docstring): monotonic times, benign races
        self._down_since: float | None = None
        self._down_until = 0.0

    # -- names and URLs -------------------------------------------------------------------
    def real_name(self, db: str) -> str:
        return f"{self.prefix}{db}"

    def db_url(self, db: str) -> str:
        return CouchDatabase(self._client, self.real_name(db)).database_url

    def doc_url(self, db: str, doc_id: str) -> str:
        if doc_id.startswith("_design/"):
            return f"{self.db_url(db)}/_design/{quote(doc_id[8:], safe='')}"
        return f"{self.db_url(db)}/{quote(doc_id, safe='')}"

    # -- the one request path -------------------------------------------------------------
    def request(self, method: str, url: str, *, what: str, ok: Iterable[int] = (200, 201, 202),
                **kwargs: Any) -> requests.Response:  # noqa: ANN401
        """Send a request with retries for transient failures; map errors to our classes."""
        deadline = time.monotonic() + self.retry_budget
        delay = self.backoff
        attempt = 0
        # the session (cloudant) applies self.timeout to every request
        while True:
            attempt += 1
            if self._down_since is not None and time.monotonic() < self._down_until:
                raise Unavailable(f"{what}: CouchDB unavailable (down for "
                                  f"{time.monotonic() - self._down_since:.1f} s)")
            try:
                resp = self.session.request(method, url, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem, status = f"{type(exc).__name__}", 0
                if self._down_since is not None:  # a probe of a known outage: no retry loop
                    self._down_until = time.monotonic() + DOWN_RETRY_S
                    raise Unavailable(f"{what}: CouchDB unavailable ({problem})") from None
            else:
                if self._down_since is not None:
                    self._back()
                if resp.status_code in ok:
                    return resp
                if resp.status_code == 404:
                    raise NotFound(f"{what}: not found", 404)
                if resp.status_code == 409 or (resp.status_code == 412 and method == "PUT"):
                    raise Conflict(f"{what}: conflict", resp.status_code)
                if resp.status_code not in _TRANSIENT_STATUS:
                    raise CouchError(f"{what}: HTTP {resp.status_code} {_reason(resp)}",
                                     resp.status_code)
                problem, status = f"HTTP {resp.status_code}", resp.status_code
            if attempt > self.retries or time.monotonic() + delay > deadline:
                log.error("couch %s failed after %d attempts: %s (%s)", what, attempt, problem,
                          redact_url(self.url))
                if status == 0:
                    self._down(problem)
                raise Unavailable(f"{what}: CouchDB unavailable ({problem})", status)
            log.warning("couch %s: %s, retry %d in %.2fs", what, problem, attempt, delay)
            time.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, 2.0)

    def _down(self, problem: str) -> None:
        """CouchDB did not answer through a whole retry loop: fail fast from now on."""
        now = time.monotonic()
        self._down_until = now + DOWN_RETRY_S
        if self._down_since is None:
            self._down_since = now
            log.error("CouchDB %s is down (%s): requests fail at once, probed every %.0f s",
                      redact_url(self.url), problem, DOWN_RETRY_S)

    def _back(self) -> None:
        since, self._down_since, self._down_until = self._down_since, None, 0.0
        if since is not None:
            log.info("CouchDB %s is back after %.1f s", redact_url(self.url),
                     time.monotonic() - since)

    # -- databases ------------------------------------------------------------------------
    def ensure_db(self, db: str) -> None:
        """Create the database if it does not exist (remembered per process)."""
        if db in self._known_dbs:
            return
        url = self.db_url(db)
        try:
            self.request("PUT", url, what=f"create {db}", ok=(201, 202, 412))
        except Conflict:
            pass
        with self._lock:
            self._known_dbs.add(db)

    def delete_db(self, db: str) -> None:
        try:
            self.request("DELETE", self.db_url(db), what=f"delete {db}")
        except NotFound:
            pass
        self._known_dbs.discard(db)

    def all_dbs(self) -> list[str]:
        """Logical names (prefix removed) of the databases under our prefix."""
        names = self.request("GET", f"{self.server_url}/_all_dbs", what="_all_dbs").json()
        return [n[len(self.prefix):] for n in names
                if n.startswith(self.prefix) and not n.startswith("_")]

    def db_info(self, db: str) -> dict[str, Any]:
        return self.request("GET", self.db_url(db), what=f"info {db}").json()

    # -- documents ------------------------------------------------------------------------
    def get(self, db: str, doc_id: str, **params: Any) -> dict[str, Any]:  # noqa: ANN401
        """A document; raises :class:`NotFound`."""
        return self.request("GET", self.doc_url(db, doc_id), what=f"get {db}/{doc_id}",
                            params=params or None).json()

    def get_or_none(self, db: str, doc_id: str) -> dict[str, Any] | None:
        try:
            return self.get(db, doc_id)
        except NotFound:
            return None

    def save(self, db: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Create or update ``doc`` (its ``_rev`` decides); returns it with the new ``_rev``.

        Raises :class:`Conflict` when ``_rev`` is stale or the id exists already.
        """
        body = json.dumps(doc)
        headers = {"Content-Type": "application/json"}
        if "_id" in doc:
            resp = self.request("PUT", self.doc_url(db, doc["_id"]), what=f"save {db}/{doc['_id']}",
                                data=body, headers=headers)
        else:
            resp = self.request("POST", self.db_url(db), what=f"create in {db}", data=body,
                                headers=headers)
        result = resp.json()
        saved = dict(doc)
        saved["_id"], saved["_rev"] = result["id"], result["rev"]
        return saved

    def update(self, db: str, doc_id: str,
               change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
               attempts: int = 10) -> dict[str, Any] | None:
        """Read-modify-write with conflict retries.

        ``change`` gets the current document (or None) and returns the new one, or None to
        leave it alone. Returns what was saved (or None).
        """
        for _ in range(attempts):
            current = self.get_or_none(db, doc_id)
            new = change(None if current is None else dict(current))
            if new is None:
                return None
            new["_id"] = doc_id
            if current is not None:
                new["_rev"] = current["_rev"]
            else:
                new.pop("_rev", None)
            try:
                return self.save(db, new)
            except Conflict:
                continue
        raise Conflict(f"update {db}/{doc_id}: still conflicting after {attempts} attempts", 409)

    def delete(self, db: str, doc_id: str, rev: str | None = None) -> bool:
        """Delete a document (its current revision when ``rev`` is None); False if absent."""
        for _ in range(10):
            if rev is None:
                current = self.get_or_none(db, doc_id)
                if current is None:
                    return False
                rev = current["_rev"]
            try:
                self.request("DELETE", self.doc_url(db, doc_id), what=f"delete {db}/{doc_id}",
                             params={"rev": rev})
                return True
            except NotFound:
                return False
            except Conflict:
                rev = None
        raise Conflict(f"delete {db}/{doc_id}: still conflicting", 409)

    # -- attachments ----------------------------------------------------------------------
    def attachment_url(self, db: str, doc_id: str, name: str) -> str:
        return f"{self.doc_url(db, doc_id)}/{quote(name, safe='')}"

    def put_attachment(self, db: str, doc_id: str, name: str, data: bytes,
                       content_type: str, rev: str | None = None) -> str:
        """Attach ``data`` to a document (its current revision unless ``rev``); returns the
        new revision. Raises :class:`NotFound` when the document is gone and
        :class:`Conflict` when ``rev`` is stale."""
        for _ in range(10):
            current = rev or self.get(db, doc_id)["_rev"]
            try:
                resp = self.request("PUT", self.attachment_url(db, doc_id, name),
                                    what=f"attach {db}/{doc_id}/{name}",
                                    params={"rev": current}, data=data,
                                    headers={"Content-Type": content_type})
                return resp.json()["rev"]
            except Conflict:
                if rev is not None:
                    raise
        raise Conflict(f"attach {db}/{doc_id}/{name}: still conflicting", 409)

    def get_attachment(self, db: str, doc_id: str, name: str) -> requests.Response:
        """The attachment as a streamed response (``iter_content``; close it when done).
        Raises :class:`NotFound`."""
        return self.request("GET", self.attachment_url(db, doc_id, name),
                            what=f"attachment {db}/{doc_id}/{name}", stream=True)

    def bulk_docs(self, db: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``_bulk_docs``; returns one result per doc (``ok`` or ``error``)."""
        if not docs:
            return []
        return self.request("POST", f"{self.db_url(db)}/_bulk_docs", what=f"bulk {db}",
                            data=json.dumps({"docs": docs}),
                            headers={"Content-Type": "application/json"}).json()

    def all_docs(self, db: str, **params: Any) -> list[dict[str, Any]]:  # noqa: ANN401
        """Rows of ``_all_docs``; ``keys=[...]`` is POSTed (any number of ids)."""
        url = f"{self.db_url(db)}/_all_docs"
        if "keys" in params:
            keys = params.pop("keys")
            return self.request("POST", url, what=f"all_docs {db}",
                                params=_view_params(params), data=json.dumps({"keys": keys}),
                                headers={"Content-Type": "application/json"}).json()["rows"]
        return self.request("GET", url, what=f"all_docs {db}",
                            params=_view_params(params)).json()["rows"]

    def view(self, db: str, design: str, view: str, **params: Any) -> list[dict[str, Any]]:  # noqa: ANN401
        """Rows of ``_design/<design>/_view/<view>``. JSON-valued params (key, startkey...)
        are encoded for you."""
        url = f"{self.db_url(db)}/_design/{quote(design, safe='')}/_view/{quote(view, safe='')}"
        if "keys" in params:
            keys = params.pop("keys")
            return self.request("POST", url, what=f"view {db}/{design}/{view}",
                                params=_view_params(params), data=json.dumps({"keys": keys}),
                                headers={"Content-Type": "application/json"}).json()["rows"]
        return self.request("GET", url, what=f"view {db}/{design}/{view}",
                            params=_view_params(params)).json()["rows"]

    # -- maintenance ----------------------------------------------------------------------
    def compact(self, db: str) -> None:
        self.request("POST", f"{self.db_url(db)}/_compact", what=f"compact {db}",
                     headers={"Content-Type": "application/json"})

    def compact_design(self, db: str, design: str) -> None:
        self.request("POST", f"{self.db_url(db)}/_compact/{quote(design, safe='')}",
                     what=f"compact {db}/_design/{design}",
                     headers={"Content-Type": "application/json"})

    def view_cleanup(self, db: str) -> None:
        self.request("POST", f"{self.db_url(db)}/_view_cleanup", what=f"view_cleanup {db}",
                     headers={"Content-Type": "application/json"})

    # -- design documents -----------------------------------------------------------------
    def load_views(self, views_dir: Path = VIEWS_DIR) -> dict[str, str]:
        """Install every design document of ``views_dir`` into its databases.

        A file is one design document; its ``whistle_databases`` list names the databases
        it belongs in (``account`` means every account database, done when an account is
        created; ``modb`` every monthly CDR database, done when one is created). A document
        is written only when it differs from the stored one. Returns
        ``{"<db>/<ddoc id>": "created" | "updated" | "unchanged"}``.
        """
        done: dict[str, str] = {}
        for path in sorted(views_dir.glob("*.json")):
            ddoc = json.loads(path.read_text())
            for db in ddoc.get("whistle_databases", []):
                if db in KINDS:
                    continue
                self.ensure_db(db)
                done[f"{db}/{ddoc['_id']}"] = self.install_design(db, ddoc)
        return done

    def install_design(self, db: str, ddoc: dict[str, Any]) -> str:
        current = self.get_or_none(db, ddoc["_id"])
        if current is not None:
            stored = {k: v for k, v in current.items() if k != "_rev"}
            if stored == ddoc:
                return "unchanged"
            ddoc = dict(ddoc, _rev=current["_rev"])
        try:
            self.save(db, ddoc)
        except Conflict:
            return "unchanged"  # another worker installed it at the same moment
        log.info("design document %s installed in %s", ddoc["_id"], db)
        return "updated" if current is not None else "created"

    def design_docs(self, name: str) -> list[dict[str, Any]]:
        """The design documents of ``views/`` that belong in databases of kind ``name``."""
        out = []
        for path in sorted(VIEWS_DIR.glob("*.json")):
            ddoc = json.loads(path.read_text())
            if name in ddoc.get("whistle_databases", []):
                out.append(ddoc)
        return out

    def ensure_system(self) -> dict[str, str]:
        """Create the system databases and install their design documents."""
        for db in SYSTEM_DATABASES:
            self.ensure_db(db)
        return self.load_views()


def _view_params(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in params.items():
        if name in ("key", "startkey", "endkey", "start_key", "end_key"):
            out[name] = json.dumps(value)
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        else:
            out[name] = value
    return out


def _reason(resp: requests.Response) -> str:
    try:
        body = resp.json()
        return f"{body.get('error', '')} {body.get('reason', '')}".strip()
    except ValueError:
        return resp.text[:200]


_instance: tuple[int, Couch] | None = None
_instance_lock = threading.Lock()


def get_couch() -> Couch:
    """The process's shared :class:`Couch` (made again in a forked child)."""
    global _instance
    pid = os.getpid()
    if _instance is None or _instance[0] != pid:
        with _instance_lock:
            if _instance is None or _instance[0] != pid:
                _instance = (pid, Couch())
    return _instance[1]
