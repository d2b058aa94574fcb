"""Voicemail boxes and their messages, as the voicemail modules, the CLI and the notify whapp
read and change them (the box's provisioning is :mod:`whistle_tasks.ops.voicemail`).

Documents, in the account's database (Kazoo's layout):

* a **box**, ``pvt_type`` vmbox: ``mailbox`` (the number callers and owners dial),
  ``name``, ``owner_id`` (the user it belongs to: whose phones' lamps it lights), ``pin_hash``
  (PBKDF2 of the PIN), ``email`` (addresses a new message is mailed to), ``timezone``,
  ``max_message_length`` / ``min_message_length`` (seconds), ``max_messages``, and the
  owner's greeting as the attachment ``greeting.wav``;
* a **message**, ``pvt_type`` voicemail_message: ``box_id``, ``folder`` (``new``,
  ``saved``; ``recording`` while the caller speaks: neither listed nor counted),
  ``timestamp``, ``caller_id_name`` / ``caller_id_number``, ``call_id``, ``length`` (ms),
  its audio the attachment ``message.wav`` (PUT there by the switch: the ``store`` command
  through the media service, which measures it). A deleted message is deleted, audio and all.

Message-waiting: :func:`mwi_updates` gives the ``mwi_update`` messages that tell an owner's
phones how many messages wait (one per switch and profile where a phone is registered);
:func:`mwi_answer` answers a phone's ``mwi_query``. The caller publishes them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import Any

import schemas
from schemas.presence import TARGET_FIELDS
from whistle_tasks.core.couch import CouchError, NotFound, get_couch
from whistle_tasks.core.log import get_logger
from whistle_tasks.data import accounts, registrations

log = get_logger(__name__)

BOX_TYPE = "vmbox"
MESSAGE_TYPE = "voicemail_message"
NEW, SAVED, RECORDING = "new", "saved", "recording"
FOLDERS = (NEW, SAVED)
MESSAGE_FILE = "message.wav"
GREETING_FILE = "greeting.wav"
#: a box's limits when it does not set them
DEFAULTS = {"max_message_length": 300, "min_message_length": 2, "max_messages": 100}
PIN_ITERATIONS = 20_000
APP_NAME = "voicemail"


# -- views -----------------------------------------------------------------------------------

def _view(db: str, design: str, view: str, **params: Any) -> list[dict[str, Any]]:  # noqa: ANN401
    """A view of an account database; an account made before the view existed gets the
    account design documents installed on first use."""
    couch = get_couch()
    try:
        return couch.view(db, design, view, **params)
    except NotFound:
        for ddoc in couch.design_docs("account"):
            couch.install_design(db, ddoc)
        return couch.view(db, design, view, **params)


# -- boxes -----------------------------------------------------------------------------------

def box(account_db: str, box_id: str) -> dict[str, Any] | None:
    doc = get_couch().get_or_none(account_db, box_id)
    if not doc or doc.get("pvt_type") != BOX_TYPE or doc.get("pvt_deleted"):
        return None
    return doc


def box_by_mailbox(account_db: str, mailbox: str) -> dict[str, Any] | None:
    rows = _view(account_db, "voicemail", "boxes_by_mailbox", key=str(mailbox), limit=1,
                 include_docs=True)
    return rows[0]["doc"] if rows and rows[0].get("doc") else None


def boxes(account_db: str) -> list[dict[str, Any]]:
    rows = _view(account_db, "voicemail", "boxes_by_mailbox", include_docs=True)
    return [row["doc"] for row in rows if row.get("doc")]


def boxes_of_owner(account_db: str, owner_id: str) -> list[dict[str, Any]]:
    rows = _view(account_db, "voicemail", "boxes_by_owner", key=owner_id, include_docs=True)
    return [row["doc"] for row in rows if row.get("doc")]


def limit(box_doc: Mapping[str, Any], name: str) -> int:
    """A box's limit ``name`` (:data:`DEFAULTS` when it sets none or a bad one)."""
    try:
        value = int(box_doc.get(name) or DEFAULTS[name])
    except (TypeError, ValueError):
        value = DEFAULTS[name]
    return max(0, value)


# -- PINs ------------------------------------------------------------------------------------

def hash_pin(pin: str, salt: str | None = None) -> str:
    """``pbkdf2_sha256$<iterations>$<salt>$<hex>`` of a PIN."""
    salt = salt or secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8"), salt.encode("ascii"),
                                 PIN_ITERATIONS).hex()
    return f"pbkdf2_sha256${PIN_ITERATIONS}${salt}${digest}"


def pin_ok(box_doc: Mapping[str, Any], pin: str) -> bool:
    """Whether ``pin`` opens the box (a box without a PIN opens for nobody)."""
    stored = str(box_doc.get("pin_hash") or "")
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        again = hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8"), salt.encode("ascii"),
                                    int(iterations)).hex()
    except ValueError:
        return False
    return hmac.compare_digest(again, digest)


def valid_pin(pin: str) -> bool:
    return pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 12


def set_pin(account_db: str, box_id: str, pin: str) -> dict[str, Any]:
    if not valid_pin(pin):
        raise ValueError("a PIN is 4 to 12 digits")
    saved = get_couch().update(account_db, box_id, lambda cur: None if cur is None else
                               {**cur, "pin_hash": hash_pin(pin), "pvt_modified": int(time.time())})
    if saved is None:
        raise NotFound(f"no box {box_id}", 404)
    return saved


# -- messages --------------------------------------------------------------------------------

def message(account_db: str, message_id: str) -> dict[str, Any] | None:
    doc = get_couch().get_or_none(account_db, message_id)
    if not doc or doc.get("pvt_type") != MESSAGE_TYPE or doc.get("pvt_deleted"):
        return None
    return doc


def messages(account_db: str, box_id: str, folder: str | None = None) -> list[dict[str, Any]]:
    """The box's messages of ``folder`` (both folders when None), oldest first."""
    found: list[dict[str, Any]] = []
    for name in (folder,) if folder else FOLDERS:
        rows = _view(account_db, "voicemail", "messages", startkey=[box_id, name],
                     endkey=[box_id, name, {}], reduce=False, include_docs=True)
        found.extend(row["doc"] for row in rows if row.get("doc"))
    return found


def counts(account_db: str, box_id: str) -> dict[str, int]:
    """``{"new": n, "saved": m}`` of one box."""
    rows = _view(account_db, "voicemail", "messages", startkey=[box_id],
                 endkey=[box_id, {}], group_level=2)
    found = {NEW: 0, SAVED: 0}
    for row in rows:
        folder = row["key"][1]
        if folder in found:
            found[folder] = int(row["value"])
    return found


def begin_message(account: Mapping[str, Any], box_doc: Mapping[str, Any], *,
                  caller_id_name: str = "", caller_id_number: str = "",
                  call_id: str = "") -> dict[str, Any]:
    """A new message in folder ``recording``: where the switch's recording will be stored."""
    now = time.time()
    doc = {"_id": uuid.uuid4().hex, "pvt_type": MESSAGE_TYPE, "box_id": box_doc["_id"],
           "folder": RECORDING, "timestamp": now, "caller_id_name": caller_id_name,
           "caller_id_number": caller_id_number, "call_id": call_id,
           "media_file": MESSAGE_FILE, "pvt_account_id": account["id"],
           "pvt_account_db": account["account_db"], "pvt_created": int(now),
           "pvt_modified": int(now)}
    return get_couch().save(account["account_db"], doc)


def recorded_length_ms(doc: Mapping[str, Any], name: str = MESSAGE_FILE) -> int | None:
    """What the media service measured of the stored attachment ``name`` (None: nothing
    stored)."""
    if name not in (doc.get("_attachments") or {}):
        return None
    facts = (doc.get("pvt_media") or {}).get(name) or {}
    length = facts.get("length_ms")
    return int(length) if isinstance(length, int | float) else None


def finish_message(account_db: str, box_doc: Mapping[str, Any],
                   message_id: str) -> dict[str, Any] | None:
    """File a recorded message as ``new``, or delete it when nothing (long enough) was
    stored: returns the filed message, or None."""
    doc = message(account_db, message_id)
    if doc is None:
        return None
    length = recorded_length_ms(doc)
    minimum = limit(box_doc, "min_message_length") * 1000
    if length is None or length < minimum:
        log.info("message %s: %s, not kept", message_id,
                 "nothing stored" if length is None else f"{length} ms is under {minimum} ms")
        delete_message(account_db, message_id)
        return None

    def file_it(cur: dict[str, Any] | None) -> dict[str, Any] | None:
        if cur is None:
            return None
        return {**cur, "folder": NEW, "length": length, "pvt_modified": int(time.time())}

    return get_couch().update(account_db, message_id, file_it)


def move(account_db: str, message_id: str, folder: str) -> dict[str, Any] | None:
    if folder not in FOLDERS:
        raise ValueError(f"folder must be one of {FOLDERS}, not {folder!r}")
    return get_couch().update(account_db, message_id, lambda cur: None if cur is None or
                              cur.get("pvt_type") != MESSAGE_TYPE else
                              {**cur, "folder": folder, "pvt_modified": int(time.time())})


def delete_message(account_db: str, message_id: str) -> bool:
    return get_couch().delete(account_db, message_id)


def mark_notified(account_db: str, message_id: str) -> None:
    """The message was mailed (a redelivered task does not mail it twice)."""
    get_couch().update(account_db, message_id, lambda cur: None if cur is None else
                       {**cur, "pvt_notified": int(time.time())})


# -- message waiting -------------------------------------------------------------------------

def owner_counts(account_db: str, owner_id: str) -> tuple[int, int]:
    """``(new, saved)`` over every box of the owner."""
    new = saved = 0
    for owned in boxes_of_owner(account_db, owner_id):
        found = counts(account_db, owned["_id"])
        new, saved = new + found[NEW], saved + found[SAVED]
    return new, saved


def owner_devices(account_db: str, owner_id: str) -> list[str]:
    """The SIP user names of the owner's devices."""
    rows = _view(account_db, "users", "devices_by_owner", key=owner_id)
    return sorted({str(row["value"]) for row in rows if row.get("value")})


def _update(to: str, new: int, saved: int, **targets: str) -> dict[str, Any]:
    return schemas.build("mwi_update", {"To": to, "Messages-New": new,
                                        "Messages-Saved": saved, **targets},
                         **{"App-Name": APP_NAME})


def mwi_updates(account: Mapping[str, Any], owner_id: str | None) -> list[dict[str, Any]]:
    """The ``mwi_update`` messages that bring the owner's phones up to date: for each of
    the owner's devices, one per switch (and profile) where it is registered. Phones not
    registered now get the count when they register or subscribe (``mwi_query``)."""
    if not owner_id:
        return []
    db, realm = str(account["account_db"]), str(account["realm"])
    new, saved = owner_counts(db, owner_id)
    updates = []
    for username in owner_devices(db, owner_id):
        where = set()
        for reg in registrations.contacts(realm, username):
            where.add((str(reg.get("FreeSWITCH-Hostname") or ""),
                       str(reg.get("Profile-Name") or "")))
        for hostname, profile in sorted(where):
            targets = {k: v for k, v in (("Switch-Hostname", hostname),
                                         ("Profile-Name", profile)) if v}
            updates.append(_update(f"{username}@{realm}", new, saved, **targets))
    return updates


class NoMailbox(Exception):
    """The phone registered (no subscription) and its owner has no box: nothing to show."""


def mwi_answer(query: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``mwi_update`` answering a phone's ``mwi_query``, or None for an unknown realm.

    A subscription always gets an answer (0/0 when the owner has no box: the phone asked).
    A registration of a phone whose owner has no box raises :class:`NoMailbox`: such a
    phone has no messages to show, so it gets no unsolicited NOTIFY (one SIP transaction
    fewer per REGISTER, and a phone that just registered is not sent a request it did not
    ask for)."""
    realm, username = str(query["Realm"]).lower(), str(query["Username"]).lower()
    account = accounts.account_by_realm(realm)
    if account is None:
        return None
    device = accounts.credentials(realm, username)
    owner = device.get("owner_id") if device else None
    db = str(account["account_db"])
    try:
        if not query.get("Subscription-Call-ID") and \
                not (owner and boxes_of_owner(db, str(owner))):
            raise NoMailbox(f"{username}@{realm}")
        new, saved = owner_counts(db, str(owner)) if owner else (0, 0)
    except CouchError as exc:
        log.warning("mwi_query %s@%s: counts unavailable (%s)", username, realm, exc)
        return None
    targets = {f: str(query[f]) for f in TARGET_FIELDS if query.get(f)}
    return _update(f"{username}@{realm}", new, saved, **targets)

