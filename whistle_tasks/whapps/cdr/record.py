"""One call detail record from one ``CHANNEL_HANGUP_COMPLETE`` call event (pure).

Whatever arrives becomes a record: a well-formed event gives a full one; an event that
fails validation, lacks its account or its times, or is not even JSON gives a record of
what is known, with ``partial: true`` and ``flags`` saying what was missing. Nothing is
dropped.

Fields from ``Custom-Channel-Vars`` (the convention every whapp follows, docs/api.md
"Call detail records"): ``Account-ID``, ``Authorizing-ID``, ``Realm``, ``Dialled-Number``
(the router), ``Callflow-ID`` (the callflow that answered), ``Voicemail-Message-ID`` and
``Recording-ID`` (what the call produced, also listed together in ``produced``).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import schemas
from whistle_tasks.data.cdrs import modb, month_of

#: call_event field -> record field, copied as they are
COPIED = (
    ("Other-Leg-Call-ID", "other_leg_call_id"),
    ("Call-Direction", "direction"),
    ("Caller-ID-Number", "caller_id_number"),
    ("Caller-ID-Name", "caller_id_name"),
    ("Callee-ID-Number", "callee_id_number"),
    ("Callee-ID-Name", "callee_id_name"),
    ("Switch-Hostname", "node"),
    ("Duration-Seconds", "duration_seconds"),
    ("Billing-Seconds", "billing_seconds"),
    ("Ringing-Seconds", "ringing_seconds"),
    ("Hangup-Cause", "hangup_cause"),
    ("Hangup-Code", "hangup_code"),
    ("SIP-Status", "sip_status"),
    ("Hangup-Disposition", "hangup_disposition"),
    ("Disposition", "disposition"),
    ("Read-Codec", "read_codec"),
    ("Write-Codec", "write_codec"),
    ("User-Agent", "user_agent"),
    ("From-Uri", "from_uri"),
    ("To-Uri", "to_uri"),
)
#: Custom-Channel-Vars key -> record field
FROM_CCVS = (
    ("Account-ID", "account_id"),
    ("Authorizing-ID", "authorizing_id"),
    ("Realm", "realm"),
    ("Dialled-Number", "dialled_number"),
    ("Callflow-ID", "callflow_id"),
    ("Voicemail-Message-ID", "voicemail_message_id"),
    ("Recording-ID", "recording_id"),
)
#: record field -> its kind in ``produced`` (what the leg left behind: ``voicemail:<message
#: id>``, ``recording:<media document id>``)
PRODUCED = (("voicemail_message_id", "voicemail"), ("recording_id", "recording"))
_INTEGERS = ("duration_seconds", "billing_seconds", "ringing_seconds", "sip_status")


def hung_up_by(direction: str | None, disposition: str | None) -> str | None:
    """``caller`` or ``callee`` from FreeSWITCH's ``sip_hangup_disposition`` of a leg.

    ``recv_*``: the far end of this leg ended it (an inbound leg's far end is the caller,
    an outbound leg's the callee); ``send_*``: the switch ended this leg because the
    other side did (or a whapp hung up).
    """
    if not disposition or direction not in ("inbound", "outbound"):
        return None
    far_end = "caller" if direction == "inbound" else "callee"
    other = "callee" if far_end == "caller" else "caller"
    if disposition.startswith("recv_"):
        return far_end
    if disposition.startswith("send_"):
        return other
    return None


def from_event(msg: Any, received_at: float | None = None) -> dict[str, Any]:  # noqa: ANN401
    """The record (a CouchDB document with its ``pvt_db``) of one hangup event.

    ``msg`` is the decoded message, or the raw body when it was not a JSON object.
    """
    received_at = time.time() if received_at is None else received_at
    flags: list[str] = []
    if not isinstance(msg, dict):
        raw = msg if isinstance(msg, bytes | str) else repr(msg)
        raw_bytes = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
        digest = hashlib.sha1(raw_bytes, usedforsecurity=False).hexdigest()
        doc = {"_id": f"malformed-{digest}", "pvt_type": "cdr", "end": received_at,
               "partial": True, "flags": ["not a JSON object: no call id, no account"],
               "raw": raw_bytes[:2000].decode("utf-8", "replace")}
        doc["pvt_db"] = modb(None, month_of(received_at))
        return doc
    try:
        schemas.validate(msg)
    except schemas.MessageError as exc:
        flags.append(f"invalid call_event: {exc}")
    if msg.get("Event-Name") not in (None, "CHANNEL_HANGUP_COMPLETE"):
        flags.append(f"not a hangup: {msg.get('Event-Name')}")
    call_id = msg.get("Call-ID")
    if not isinstance(call_id, str) or not call_id or len(call_id) > 200:
        body = repr(sorted(msg.items()))[:4000].encode("utf-8", "replace")
        call_id = "unknown-" + hashlib.sha1(body, usedforsecurity=False).hexdigest()
        flags.append("no Call-ID")
    doc: dict[str, Any] = {"_id": call_id, "pvt_type": "cdr", "call_id": call_id}
    for source, name in COPIED:
        value = msg.get(source)
        if value not in (None, ""):
            doc[name] = value
    for name in _INTEGERS:
        if name in doc:
            try:
                doc[name] = int(doc[name])
            except (TypeError, ValueError):
                flags.append(f"{name}: not an integer ({doc.pop(name)!r})")
    ccvs = msg.get("Custom-Channel-Vars")
    ccvs = ccvs if isinstance(ccvs, dict) else {}
    for source, name in FROM_CCVS:
        value = ccvs.get(source)
        if value not in (None, ""):
            doc[name] = str(value)
    produced = [f"{kind}:{doc[name]}" for name, kind in PRODUCED if doc.get(name)]
    if produced:
        doc["produced"] = produced
    if "dialled_number" not in doc and msg.get("Caller-Destination-Number"):
        doc["dialled_number"] = str(msg["Caller-Destination-Number"])
    for source, name in (("Channel-Created-Time", "start"), ("Channel-Answered-Time", "answer"),
                         ("Channel-Progress-Time", "progress"),
                         ("Channel-Hangup-Time", "end")):
        value = _seconds(msg.get(source))
        if value is not None:
            doc[name] = value
    if "end" not in doc:
        stamp = _seconds(msg.get("Timestamp"))
        doc["end"] = stamp if stamp is not None else received_at
        flags.append("no hangup time: the event's time" if stamp is not None
                     else "no hangup time: the time it was received")
    if "start" not in doc:
        flags.append("no start time")
        if "duration_seconds" in doc:
            doc["start"] = doc["end"] - doc["duration_seconds"]
    who = hung_up_by(doc.get("direction"), doc.get("hangup_disposition"))
    if who:
        doc["hung_up_by"] = who
    if not doc.get("account_id"):
        flags.append("no Account-ID: kept with the records of no account")
    doc["partial"] = bool(flags)
    if flags:
        doc["flags"] = flags
    doc["pvt_db"] = modb(doc.get("account_id"), month_of(doc["end"]))
    doc["pvt_created"] = received_at
    return doc


def _seconds(value: Any) -> float | None:  # noqa: ANN401
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
