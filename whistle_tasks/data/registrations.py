"""Where a phone is: registrations in CouchDB (system of record) and Redis (the fast copy).

One document per registered contact in ``registrations`` (W's layout): ``_id`` = md5 of
the cleaned Contact, so storing the same ``reg_success`` twice writes one document
(idempotent, safe under redelivery). A user has one current registration: a new contact
replaces the user's older ones. The document keeps the API field names of ``reg_success``
(so a query answers them as they came) plus ``pvt_expires_at`` (Unix seconds) =
``Event-Timestamp`` + ``Expires`` + the deviation, which the beat task compares with now.

The Redis copy (namespace ``reg``, key ``realm/user``) is what the router reads to find a
contact; it expires by itself at ``pvt_expires_at``.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any
from urllib.parse import unquote

from whistle_tasks.core.cache import MISSING, Cache
from whistle_tasks.core.config import settings
from whistle_tasks.core.couch import Conflict, get_couch
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

DB = "registrations"
_cache = Cache("reg", local_ttl=1)  # registrations change all the time: 1 s locally

REG_FIELDS = (
    "Contact", "Event-Timestamp", "Expires", "Realm", "Username", "From-User", "From-Host",
    "To-User", "To-Host", "Network-IP", "Network-Port", "RPid", "Status", "User-Agent",
    "Call-ID", "Profile-Name", "Presence-Hosts", "FreeSWITCH-Hostname", "Account-ID",
    "Authorizing-ID", "Original-Contact", "Source-IP", "Source-Port",
)


def clean_contact(contact: str) -> str:
    """docs/api.md: strip ``<`` ``>`` (and a display name before them), unquote the host part."""
    contact = contact.strip()
    if "<" in contact:
        contact = contact[contact.index("<") + 1:]
        contact = contact[:contact.index(">")] if ">" in contact else contact
    contact = contact.strip("<> ")
    if "@" in contact:
        user, host = contact.split("@", 1)
        contact = f"{user}@{unquote(host)}"
    return contact


def doc_id(contact: str) -> str:
    return hashlib.md5(clean_contact(contact).encode("utf-8"),  # noqa: S324 - W's id, not a secret
                       usedforsecurity=False).hexdigest()


def user_key(realm: str, username: str) -> str:
    return f"{realm.lower()}/{username.lower()}"


def _expires_at(reg: dict[str, Any]) -> float:
    return float(reg["Event-Timestamp"]) + int(reg["Expires"]) + settings.reg_expires_deviation


def to_document(msg: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a reg_success."""
    doc = {name: msg[name] for name in REG_FIELDS if name in msg}
    doc["Realm"] = str(msg["Realm"]).lower()
    doc["Username"] = str(msg["Username"]).lower()
    doc["Original-Contact"] = msg.get("Original-Contact") or msg["Contact"]
    doc["Contact"] = clean_contact(str(msg["Contact"]))
    doc["Expires"] = int(msg["Expires"])
    doc["Event-Timestamp"] = float(msg["Event-Timestamp"])
    doc["pvt_type"] = "registration"
    doc["pvt_expires_at"] = _expires_at(doc)
    doc["_id"] = doc_id(doc["Contact"])
    return doc


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith(("_", "pvt_"))}


def store(msg: dict[str, Any]) -> str:
    """Apply one reg_success; returns ``stored``, ``replaced`` or ``deregistered``."""
    couch = get_couch()
    if int(msg["Expires"]) == 0:
        deregister(str(msg["Realm"]), str(msg["Username"]), str(msg["Contact"]))
        return "deregistered"
    doc = to_document(msg)
    key = user_key(doc["Realm"], doc["Username"])
    replaced = 0
    cached = _cache.get(key)
    if cached is MISSING or cached.get("_id") != doc["_id"]:
        # the user's other contacts are replaced by this one (the cache says who they are;
        # without an entry, the view does)
        for old_id in _other_contacts(doc["Realm"], doc["Username"], doc["_id"]):
            replaced += couch.delete(DB, old_id)
    try:
        saved = couch.update(DB, doc["_id"], lambda _current: dict(doc))
    except Conflict:
        # others kept writing this very registration (same contact, same id) meanwhile:
        # one of those writes is the registration; ours would only repeat it
        log.info("registration %s@%s: written concurrently elsewhere", doc["Username"],
                 doc["Realm"])
        saved = get_couch().get_or_none(DB, doc["_id"])
    ttl = max(1, int(doc["pvt_expires_at"] - time.time()))
    if saved is not None:
        _cache.set(key, saved, ttl=ttl)
    return "replaced" if replaced else "stored"


def _other_contacts(realm: str, username: str, keep_id: str) -> list[str]:
    """Ids of the user's stored registrations other than ``keep_id``."""
    rows = get_couch().view(DB, "registrations", "by_user", startkey=[realm, username],
                            endkey=[realm, username, {}])
    return [row["id"] for row in rows if row["id"] != keep_id]


def deregister(realm: str, username: str, contact: str | None = None) -> int:
    """Remove a user's registration (only ``contact``'s when given); returns docs removed."""
    realm, username = realm.lower(), username.lower()
    couch = get_couch()
    if contact:
        ids = [doc_id(contact)]
    else:
        ids = [row["id"] for row in couch.view(DB, "registrations", "by_user",
                                               startkey=[realm, username],
                                               endkey=[realm, username, {}])]
    removed = sum(couch.delete(DB, i) for i in ids)
    cached = _cache.get(user_key(realm, username))
    if cached is not MISSING and (contact is None or cached.get("_id") in ids):
        _cache.delete(user_key(realm, username))
    return removed


def lookup(realm: str, username: str) -> dict[str, Any] | None:
    """The user's current registration (API field names), or None. Redis first."""
    key = user_key(realm, username)
    cached = _cache.get(key)
    if cached is not MISSING:
        if cached and cached.get("pvt_expires_at", 0) > time.time():
            return _public(cached)
        return None
    doc = _newest(realm.lower(), username.lower())
    if doc is None:
        return None
    _cache.set(key, doc, ttl=max(1, int(doc["pvt_expires_at"] - time.time())))
    return _public(doc)


def contacts(realm: str, username: str) -> list[dict[str, Any]]:
    """Every live registration of a user (API field names), newest first: what a call to
    the user rings. (Today one per user; several phones per user are issue #9's.)"""
    found = lookup(realm, username)
    return [found] if found else []


def _newest(realm: str, username: str) -> dict[str, Any] | None:
    rows = get_couch().view(DB, "registrations", "by_user", startkey=[realm, username, {}],
                            endkey=[realm, username], descending=True, limit=1,
                            include_docs=True)
    if not rows or not rows[0].get("doc"):
        return None
    doc = rows[0]["doc"]
    return doc if doc.get("pvt_expires_at", 0) > time.time() else None


def query(realm: str | None, username: str | None = None) -> list[dict[str, Any]]:
    """Registrations of a user, of a realm, or of everything (``realm == "all"``)."""
    now = time.time()
    if realm and username:
        found = lookup(realm, username)
        return [found] if found else []
    couch = get_couch()
    if realm and realm.lower() != "all":
        rows = couch.view(DB, "registrations", "by_realm", key=realm.lower(), reduce=False,
                          include_docs=True)
    else:
        rows = couch.view(DB, "registrations", "by_realm", reduce=False, include_docs=True)
    return [_public(row["doc"]) for row in rows
            if row.get("doc") and row["doc"].get("pvt_expires_at", 0) > now]


def flush(realm: str, username: str | None = None) -> int:
    """Forget the registrations of a realm (or of one user in it); returns docs removed."""
    if username:
        return deregister(realm, username)
    couch = get_couch()
    rows = couch.view(DB, "registrations", "by_realm", key=realm.lower(), reduce=False,
                      include_docs=True)
    docs = [{"_id": r["id"], "_rev": r["doc"]["_rev"], "_deleted": True} for r in rows
            if r.get("doc")]
    couch.bulk_docs(DB, docs)
    for row in rows:
        if row.get("doc"):
            _cache.delete(user_key(row["doc"]["Realm"], row["doc"]["Username"]))
    return len(docs)


def expire(now: float | None = None) -> int:
    """Delete every registration whose ``pvt_expires_at`` has passed; returns how many."""
    now = time.time() if now is None else now
    couch = get_couch()
    rows = couch.view(DB, "registrations", "by_expiry", endkey=now)
    if not rows:
        return 0
    results = couch.bulk_docs(DB, [{"_id": r["id"], "_rev": r["value"]["rev"], "_deleted": True}
                                   for r in rows])
    removed = 0
    for row, result in zip(rows, results, strict=False):
        if result.get("error"):
            # re-registered meanwhile (conflict): the newer revision lives on
            continue
        removed += 1
        key = user_key(row["value"]["realm"], row["value"]["username"])
        cached = _cache.get(key)
        if cached is not MISSING and cached.get("_id") == row["id"]:
            _cache.delete(key)
    if removed:
        log.info("expired %d registrations", removed)
    return removed


def prime() -> int:
    """Copy every live registration into Redis (worker start); returns how many."""
    now = time.time()
    rows = get_couch().view(DB, "registrations", "by_realm", reduce=False, include_docs=True)
    items = {}
    for row in rows:
        doc = row.get("doc")
        if doc and doc.get("pvt_expires_at", 0) > now:
            key = user_key(doc["Realm"], doc["Username"])
            if key not in items or doc["Event-Timestamp"] > items[key]["Event-Timestamp"]:
                items[key] = doc
    for key, doc in items.items():
        _cache.set(key, doc, ttl=max(1, int(doc["pvt_expires_at"] - now)))
    return len(items)

