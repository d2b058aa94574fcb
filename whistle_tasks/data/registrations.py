"""Where a user's phones are: registrations in CouchDB (system of record) and Redis (the fast copy).

One document per registered contact of a user in ``registrations``: ``_id`` = md5 of
``realm/user/contact`` (the contact cleaned), so a desk phone and a softphone of one user
are two documents, and storing the same ``reg_success`` twice writes one (idempotent,
safe under redelivery). The document keeps the API field names of ``reg_success`` (so a
query answers them as they came) plus ``pvt_expires_at`` (Unix seconds) =
``Event-Timestamp`` + ``Expires`` + the deviation, which the beat task compares with now.

Order: workers handle ``reg_success`` concurrently and RabbitMQ may deliver them out of
order, so each contact keeps the newest by ``Event-Timestamp`` (FreeSWITCH's clock): a
write is a compare-and-set on the document's revision that leaves a newer document alone.
An un-REGISTER (``Expires`` 0), FreeSWITCH's expiry of a contact, or a node sync that no
longer finds it, leaves a *tombstone* (``pvt_unregistered``) with its own timestamp, so a
registration older than it that arrives later cannot bring the contact back; tombstones
are swept by the expiry task after :data:`TOMBSTONE_SECONDS`.

The Redis copy is one hash per user (namespace ``regs``, key ``realm/user``, one field per
contact), written by a Lua script that keeps the newer version of each field
(:class:`~whistle_tasks.core.cache.VersionedHashes`), tombstones included; a reader that
finds no complete hash loads the user's documents from CouchDB into it the same way (a
concurrent newer write or tombstone wins over what it loaded). Each process also keeps
what it read for one second.

Repeats: a phone re-REGISTERs every few seconds to minutes, and a replayed or redelivered
event repeats a version already stored. Writes of one contact are serialized within a
process (striped locks: no conflict storm between a worker's own threads), and each
process remembers for :data:`WRITTEN_TTL` seconds the newest version of each contact it
wrote or found; a ``reg_success`` that is not newer than that is answered ``older`` at
once, without a CouchDB read-modify-write (measured: the first writes of a storm of repeats
held every registrar thread past the lookups' 2.5 s budget; RELIABILITY.md, "Soak").

:func:`contacts` is what a call to a user rings: every live contact, newest first.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from whistle_tasks.core.cache import MISSING, Cache, VersionedHashes
from whistle_tasks.core.config import settings
from whistle_tasks.core.couch import Conflict, get_couch
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

DB = "registrations"
#: How long an un-REGISTER is remembered (a registration older than it is refused).
TOMBSTONE_SECONDS = 3600
#: How long "this user has no registration" is kept in Redis.
EMPTY_TTL = 30
#: How long a process keeps what it read (registrations change all the time).
LOCAL_TTL = 1
#: Documents per CouchDB bulk request (node sync).
BULK = 500

#: How long a process remembers the newest version of a contact it wrote or found.
WRITTEN_TTL = 60
#: Locks serializing the writes of one contact within a process (by the document's id).
WRITE_STRIPES = 64

_hashes = VersionedHashes("regs")
_local = Cache("regs-read", ttl=LOCAL_TTL, shared=False)
_written = Cache("regs-written", ttl=WRITTEN_TTL, shared=False)
_stripes = [threading.Lock() for _ in range(WRITE_STRIPES)]
#: repeats answered from memory, without a CouchDB write (a counter, for tests and ops)
STATS = {"repeats_skipped": 0}

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


def user_key(realm: str, username: str) -> str:
    return f"{realm.lower()}/{username.lower()}"


def doc_id(realm: str, username: str, contact: str) -> str:
    """The document of one contact of one user."""
    name = f"{user_key(realm, username)}/{clean_contact(contact)}"
    return hashlib.md5(name.encode("utf-8"),  # noqa: S324 - an id, not a secret
                       usedforsecurity=False).hexdigest()


def _expires_at(reg: dict[str, Any]) -> float:
    return float(reg["Event-Timestamp"]) + int(reg["Expires"]) + settings.reg_expires_deviation


def to_document(msg: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a reg_success (``Expires`` > 0)."""
    doc = {name: msg[name] for name in REG_FIELDS if name in msg}
    doc["Realm"] = str(msg["Realm"]).lower()
    doc["Username"] = str(msg["Username"]).lower()
    doc["Original-Contact"] = msg.get("Original-Contact") or msg["Contact"]
    doc["Contact"] = clean_contact(str(msg["Contact"]))
    doc["Expires"] = int(msg["Expires"])
    doc["Event-Timestamp"] = float(msg["Event-Timestamp"])
    doc["pvt_type"] = "registration"
    doc["pvt_expires_at"] = _expires_at(doc)
    doc["_id"] = doc_id(doc["Realm"], doc["Username"], doc["Contact"])
    return doc


def tombstone(realm: str, username: str, contact: str, timestamp: float,
              node: str | None = None) -> dict[str, Any]:
    """The stored form of "this contact is gone as of ``timestamp``"."""
    doc: dict[str, Any] = {
        "Realm": realm.lower(), "Username": username.lower(),
        "Contact": clean_contact(contact), "Expires": 0, "Event-Timestamp": float(timestamp),
        "pvt_type": "registration", "pvt_unregistered": True,
        "pvt_expires_at": float(timestamp) + TOMBSTONE_SECONDS + settings.reg_expires_deviation}
    if node:
        doc["FreeSWITCH-Hostname"] = node
    doc["_id"] = doc_id(doc["Realm"], doc["Username"], doc["Contact"])
    return doc


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith(("_", "pvt_"))}


def _live(doc: dict[str, Any] | None, now: float) -> bool:
    return bool(doc) and not doc.get("pvt_unregistered") and doc.get("pvt_expires_at", 0) > now


# --------------------------------------------------------------------------- writes


def store(msg: dict[str, Any]) -> str:
    """Apply one reg_success: ``stored`` (new or newer), ``unregistered`` (Expires 0), or
    ``older`` (what is stored is newer: nothing changed)."""
    if int(msg["Expires"]) == 0:
        return unregister(msg)
    return "stored" if _put(to_document(msg)) else "older"


def unregister(msg: dict[str, Any]) -> str:
    """An un-REGISTER or an expiry (``Expires`` 0): a tombstone for that contact, or for
    every contact of the user when the event names none."""
    realm, username = str(msg["Realm"]), str(msg["Username"])
    timestamp = float(msg["Event-Timestamp"])
    contact = clean_contact(str(msg.get("Contact") or ""))
    node = msg.get("FreeSWITCH-Hostname")
    if contact:
        contacts_ = [contact]
    else:
        contacts_ = [doc["Contact"] for doc in _user_docs(realm.lower(), username.lower())
                     if not doc.get("pvt_unregistered")]
    written = sum(_put(tombstone(realm, username, c, timestamp, node)) for c in contacts_)
    return "unregistered" if written or not contacts_ else "older"


def _put(doc: dict[str, Any], *, merge: bool = False) -> bool:
    """Write ``doc`` unless its contact holds a newer (or the same) version; True if
    written. ``merge``: keep the fields of a live stored registration that ``doc`` lacks
    (a node sync knows less about a registration than its reg_success did)."""
    with _stripes[int(doc["_id"][:8], 16) % WRITE_STRIPES]:
        known = _written.get(doc["_id"])
        if not merge and known is not MISSING and known >= doc["Event-Timestamp"]:
            STATS["repeats_skipped"] += 1   # the same or an older version: nothing to do
            return False
        return _put_now(doc, merge=merge)


def _put_now(doc: dict[str, Any], *, merge: bool) -> bool:
    """The read-modify-write of :func:`_put` (True if written); remembers the version
    CouchDB holds now."""
    kept: list[dict[str, Any]] = []

    def newer_wins(current: dict[str, Any] | None) -> dict[str, Any] | None:
        kept.clear()
        if current is not None and current.get("Event-Timestamp", 0) >= doc["Event-Timestamp"]:
            kept.append(current)
            return None
        if merge and current is not None and not current.get("pvt_unregistered"):
            return {**_public(current), **doc}
        return dict(doc)

    saved = None
    for _ in range(10):
        try:
            saved = get_couch().update(DB, doc["_id"], newer_wins, attempts=20)
            break
        except Conflict:
            continue     # a storm of writers of this one contact: read and compare again
    else:
        raise Conflict(f"registration {doc['_id']}: still conflicting", 409)
    # Redis gets what CouchDB holds now (ours, or the newer one that stayed: a writer that
    # died between its two writes leaves Redis behind; this heals it)
    now_held = saved or (kept[0] if kept else None)
    _to_redis([now_held] if now_held else [])
    if now_held is not None:
        _written.set(doc["_id"], float(now_held["Event-Timestamp"]))
    return saved is not None


def _to_redis(docs: Iterable[dict[str, Any]]) -> None:
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in docs:
        by_user[user_key(doc["Realm"], doc["Username"])].append(doc)
    for key, user_docs in by_user.items():
        _hashes.merge(key, [_hash_item(d) for d in user_docs])
        _local.delete(key)


def _hash_item(doc: dict[str, Any]) -> tuple[str, float, float, str]:
    value = {k: v for k, v in doc.items() if k not in ("_id", "_rev")}
    return (doc["_id"], float(doc["Event-Timestamp"]), float(doc["pvt_expires_at"]),
            json.dumps(value, separators=(",", ":")))


def deregister(realm: str, username: str, contact: str | None = None) -> int:
    """Forget a user's registrations (only ``contact``'s when given), tombstones too (an
    operator's flush, not a phone's un-REGISTER); returns documents removed."""
    realm, username = realm.lower(), username.lower()
    couch = get_couch()
    if contact:
        ids = [doc_id(realm, username, contact)]
    else:
        ids = [doc["_id"] for doc in _user_docs(realm, username)]
    removed = sum(couch.delete(DB, i) for i in ids)
    _forget_users([user_key(realm, username)])
    return removed


def _forget_users(keys: Iterable[str]) -> None:
    keys = list(dict.fromkeys(keys))
    _written.clear_local()  # documents were deleted: remember no version of them
    _hashes.delete(*keys)
    for key in keys:
        _local.delete(key)


# --------------------------------------------------------------------------- reads


def contacts(realm: str, username: str) -> list[dict[str, Any]]:
    """Every live registration of a user (API field names), newest first, one per
    contact: what a call to the user rings. Redis first; CouchDB when Redis has no
    complete copy (which is then made)."""
    key = user_key(realm, username)
    cached = _local.get(key)
    if cached is not MISSING:
        return cached
    fields = _hashes.get(key)
    if fields is None:
        docs = _user_docs(realm.lower(), username.lower())
        _hashes.merge(key, [_hash_item(d) for d in docs], complete=True, empty_ttl=EMPTY_TTL)
    else:
        docs = [json.loads(value) for value in fields.values()]
    now = time.time()
    found: dict[str, dict[str, Any]] = {}
    for doc in sorted((d for d in docs if _live(d, now)),
                      key=lambda d: d["Event-Timestamp"], reverse=True):
        found.setdefault(doc["Contact"], _public(doc))
    result = list(found.values())
    _local.set(key, result)
    return result


def lookup(realm: str, username: str) -> dict[str, Any] | None:
    """The user's newest registration (API field names), or None."""
    found = contacts(realm, username)
    return found[0] if found else None


def _user_docs(realm: str, username: str) -> list[dict[str, Any]]:
    """Every stored document of a user (live, expired and tombstones)."""
    rows = get_couch().view(DB, "registrations", "by_user", startkey=[realm, username],
                            endkey=[realm, username, {}], include_docs=True)
    return [row["doc"] for row in rows if row.get("doc")]


def query(realm: str | None, username: str | None = None) -> list[dict[str, Any]]:
    """Registrations of a user, of a realm, or of everything (``realm == "all"``)."""
    now = time.time()
    if realm and username:
        return contacts(realm, username)
    couch = get_couch()
    if realm and realm.lower() != "all":
        rows = couch.view(DB, "registrations", "by_realm", key=realm.lower(), reduce=False,
                          include_docs=True)
    else:
        rows = couch.view(DB, "registrations", "by_realm", reduce=False, include_docs=True)
    return [_public(row["doc"]) for row in rows if _live(row.get("doc"), now)]


# --------------------------------------------------------------------------- a node's


def sync(node: str, timestamp: float, held: list[dict[str, Any]]) -> dict[str, int]:
    """Reconcile the registrations of FreeSWITCH ``node`` with what it holds (``held``:
    reg_success fields, as it held them at ``timestamp`` on its clock): a registration
    Whistle did not know (or knew older, and different) is stored; one of that node's
    that it no longer has, and that is older than ``timestamp``, gets a tombstone.
    Written in bulk, each document by compare-and-set on its revision (a conflict falls
    back to the one-by-one newer-wins write). Returns counts."""
    counts = {"held": 0, "stored": 0, "unchanged": 0, "removed": 0}
    wanted: dict[str, dict[str, Any]] = {}
    for reg in held:
        doc = to_document({**reg, "FreeSWITCH-Hostname": node})
        if doc["Expires"] > 0:
            wanted[doc["_id"]] = doc
    counts["held"] = len(wanted)
    couch = get_couch()
    current: dict[str, dict[str, Any] | None] = {}
    ids = list(wanted)
    for start in range(0, len(ids), BULK):
        for row in couch.all_docs(DB, keys=ids[start:start + BULK], include_docs=True):
            if "id" in row:
                current[row["id"]] = row.get("doc")
    writes: list[tuple[dict[str, Any], dict[str, Any], bool]] = []
    for id_, doc in wanted.items():
        stored = current.get(id_)
        if stored and (stored.get("Event-Timestamp", 0) >= doc["Event-Timestamp"]
                       or _agrees(stored, doc)):
            counts["unchanged"] += 1
            continue
        new = {**_public(stored), **doc} if stored and not stored.get("pvt_unregistered") \
            else dict(doc)
        if stored:
            new["_rev"] = stored["_rev"]
        writes.append((new, doc, True))
    for row in couch.view(DB, "registrations", "by_node", key=node, include_docs=True):
        stored = row.get("doc")
        if not stored or row["id"] in wanted or stored["Event-Timestamp"] >= timestamp:
            continue
        gone = tombstone(stored["Realm"], stored["Username"], stored["Contact"], timestamp,
                         node)
        writes.append(({**gone, "_rev": stored["_rev"]}, gone, False))
    written = _bulk_put(writes)
    counts["stored"] = sum(1 for _, _, held_ in written if held_)
    counts["removed"] = sum(1 for _, _, held_ in written if not held_)
    counts["unchanged"] += sum(1 for w in writes if w[2]) - counts["stored"]
    return counts


def _agrees(stored: dict[str, Any], doc: dict[str, Any]) -> bool:
    """A live stored registration that says what the node says (the node reports whole
    seconds left: its expiry within 2 s is the same registration)."""
    return (not stored.get("pvt_unregistered") and stored.get("Contact") == doc["Contact"]
            and abs(float(stored.get("pvt_expires_at", 0)) - doc["pvt_expires_at"]) <= 2)


def _bulk_put(writes: list[tuple[dict[str, Any], dict[str, Any], bool]]
              ) -> list[tuple[dict[str, Any], dict[str, Any], bool]]:
    """Write ``(document with the _rev it replaces, the plain document, merge)`` in bulk;
    a conflict (written meanwhile) goes through :func:`_put`. Returns those written."""
    couch = get_couch()
    written = []
    for start in range(0, len(writes), BULK):
        chunk = writes[start:start + BULK]
        results = couch.bulk_docs(DB, [new for new, _, _ in chunk])
        saved = []
        for (new, doc, merge), result in zip(chunk, results, strict=True):
            if result.get("error"):
                if _put(doc, merge=merge):
                    written.append((new, doc, merge))
            else:
                saved.append({**new, "_rev": result.get("rev")})
                written.append((new, doc, merge))
        _to_redis(saved)
    return written


# --------------------------------------------------------------------------- maintenance


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
    _forget_users(user_key(r["doc"]["Realm"], r["doc"]["Username"]) for r in rows
                  if r.get("doc"))
    return len(docs)


def expire(now: float | None = None) -> int:
    """Delete every registration (and tombstone) whose ``pvt_expires_at`` has passed;
    returns how many."""
    now = time.time() if now is None else now
    couch = get_couch()
    rows = couch.view(DB, "registrations", "by_expiry", endkey=now)
    if not rows:
        return 0
    _written.clear_local()
    results = couch.bulk_docs(DB, [{"_id": r["id"], "_rev": r["value"]["rev"], "_deleted": True}
                                   for r in rows])
    removed = 0
    for row, result in zip(rows, results, strict=False):
        if result.get("error"):
            # re-registered meanwhile (conflict): the newer revision lives on
            continue
        removed += 1
        value = row["value"]
        key = user_key(value["realm"], value["username"])
        _hashes.remove(key, row["id"], float(value.get("ts") or 0))
        _local.delete(key)
    if removed:
        log.info("expired %d registrations", removed)
    return removed


def prime() -> int:
    """Copy every user's registrations into Redis (worker start); returns how many users."""
    return len(prime_users())


def prime_users() -> list[tuple[str, str]]:
    """:func:`prime`, returning the (realm, username) of every registered user (the devices
    whose credentials are hot: the registrar primes those first)."""
    rows = get_couch().view(DB, "registrations", "by_user", include_docs=True)
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        doc = row.get("doc")
        if doc:
            by_user[user_key(doc["Realm"], doc["Username"])].append(doc)
    for key, docs in by_user.items():
        _hashes.merge(key, [_hash_item(d) for d in docs], complete=True, empty_ttl=EMPTY_TTL)
    return [(docs[0]["Realm"], docs[0]["Username"]) for docs in by_user.values()]
