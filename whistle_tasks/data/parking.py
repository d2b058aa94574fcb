"""Valet parking slots: which call is parked in which slot of an account's lot.

A parked call holds its slot by a document of the account's database,
``parking-<lot>-<slot>`` (``pvt_type`` ``parked``, the ``call_id``, ``pvt_expires_at``): the
first to create it has the slot (CouchDB refuses a second create), so two calls never park
in one slot, and a retriever asks whether a slot holds a call before asking the switch
(``valet_park`` on an empty slot would park the retriever instead). The parked call's
callflow releases the slot when it leaves it; a slot whose holder vanished (a worker that
died) frees itself after ``MAX_PARK_S``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from whistle_tasks.core.couch import Conflict, get_couch

MAX_PARK_S = 4 * 3600
SLOTS = range(701, 800)


def _id(lot: str, slot: str) -> str:
    return f"parking-{lot}-{slot}"


def holder(account: Mapping[str, Any], lot: str, slot: str) -> str | None:
    """The call id parked in ``slot`` of ``lot``, or None."""
    doc = get_couch().get_or_none(account["account_db"], _id(lot, slot))
    if doc is None or doc.get("pvt_expires_at", 0) < time.time():
        return None
    return str(doc.get("call_id"))


def claim(account: Mapping[str, Any], lot: str, slot: str, call_id: str) -> bool:
    """Take ``slot`` for ``call_id``; False when another call holds it."""
    couch = get_couch()
    db = account["account_db"]
    doc = {"_id": _id(lot, slot), "pvt_type": "parked", "lot": lot, "slot": slot,
           "call_id": call_id, "pvt_expires_at": time.time() + MAX_PARK_S}
    current = couch.get_or_none(db, doc["_id"])
    if current is not None:
        if current.get("pvt_expires_at", 0) >= time.time() and \
                current.get("call_id") != call_id:
            return False
        doc["_rev"] = current["_rev"]
    try:
        couch.save(db, doc)
    except Conflict:
        return False
    return True


def claim_free(account: Mapping[str, Any], lot: str, call_id: str) -> str | None:
    """The first free slot of the lot, taken for ``call_id``; None when the lot is full."""
    for slot in SLOTS:
        if claim(account, lot, str(slot), call_id):
            return str(slot)
    return None


def release(account: Mapping[str, Any], lot: str, slot: str, call_id: str) -> None:
    """Free ``slot`` if ``call_id`` still holds it."""
    couch = get_couch()
    current = couch.get_or_none(account["account_db"], _id(lot, slot))
    if current is not None and current.get("call_id") == call_id:
        try:
            couch.delete(account["account_db"], current["_id"], current["_rev"])
        except Conflict:
            pass
