"""Modules that put the caller somewhere with others: ``conference``, ``park``, ``retrieve``.

``conference``: a room of the account (mod_conference on the switch; ``pin``: callers are
asked for it), for as long as the caller stays; then the ``_`` child. ``park``: the call
waits in a valet slot of the account's lot (the ``slot`` given, else the first free one,
announced) until someone retrieves it; a ``slot`` that already holds a call is picked up
instead. ``retrieve``: connect to the call parked in a slot (the ``slot`` given, else the
one the caller keys); ``empty`` when no call is parked there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schemas.callflow import DEFAULT
from whistle_tasks.core.log import get_logger
from whistle_tasks.data import parking
from whistle_tasks.whapps.callflow.modules.media import answered, media_path
from whistle_tasks.whapps.callflow.registry import module

if TYPE_CHECKING:
    from whistle_tasks.whapps.callflow.call import Call
    from whistle_tasks.whapps.callflow.context import Context

log = get_logger(__name__)

SLOT_PROMPT = "ivr/ivr-enter_ext_pound.wav"


def room_id(context: Context, name: str) -> str:
    """A name of the account, unique on the switch (rooms and lots are switch-wide)."""
    return f"{context.account_id}-{name}"


@module("conference")
def conference(call: Call, data: dict[str, Any], context: Context) -> str:
    answered(call, data, context)
    fields: dict[str, Any] = {"Conference-ID": room_id(context, str(data["name"]))}
    if data.get("profile"):
        fields["Profile"] = str(data["profile"])
    if data.get("pin"):
        fields["PIN"] = str(data["pin"])
    if data.get("moderator") in (True, "true"):
        fields["Moderator"] = True
    call.command("conference", **fields)
    return DEFAULT


def _connect(call: Call, lot: str, slot: str) -> bool:
    """``valet_park`` on a slot that holds a call: the switch connects the two; wait until
    that ends. False when the switch did not connect (the parked call left meanwhile)."""
    since = call.seen
    call.command("valet_park", Lot=lot, Slot=slot)
    return call.wait_bridge_end(since=since)


@module("park")
def park(call: Call, data: dict[str, Any], context: Context) -> str | None:
    answered(call, data, context)
    lot = room_id(context, str(data.get("lot") or "default"))
    slot = str(data["slot"]) if data.get("slot") else None
    if slot is not None and parking.holder(context.account, lot, slot):
        log.info("%s: slot %s holds a call: picking it up", context.path, slot)
        return None if _connect(call, lot, slot) else "_"
    if slot is None:
        slot = parking.claim_free(context.account, lot, call.call_id)
        if slot is None:
            log.info("%s: lot %s is full", context.path, lot)
            return DEFAULT
        call.say(slot, kind="number", method="iterated")
    elif not parking.claim(context.account, lot, slot, call.call_id):
        return DEFAULT
    log.info("%s: parked in %s of %s", context.path, slot, lot)
    context.vars["parked"] = slot
    try:
        since = call.seen
        call.command("valet_park", Lot=lot, Slot=slot)
        call.wait_bridge_end(since=since, start_timeout=2.0)
    finally:
        parking.release(context.account, lot, slot, call.call_id)
    return None


@module("retrieve")
def retrieve(call: Call, data: dict[str, Any], context: Context) -> str | None:
    answered(call, data, context)
    lot = room_id(context, str(data.get("lot") or "default"))
    slot = str(data.get("slot") or "")
    if not slot:
        slot = call.collect_digits(min_digits=1, max_digits=6, timeout_ms=10000, tries=3,
                                   media=media_path(str(data.get("prompt") or SLOT_PROMPT),
                                                    context))
    if not slot or not parking.holder(context.account, lot, slot):
        log.info("%s: slot %r of %s is empty", context.path, slot, lot)
        return "empty"
    log.info("%s: retrieving slot %s of %s", context.path, slot, lot)
    return None if _connect(call, lot, slot) else "empty"
