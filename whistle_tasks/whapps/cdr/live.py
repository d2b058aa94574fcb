"""The live index of calls in progress (read side: :mod:`whistle_tasks.data.calls`).

Fed by the call events the cdr worker consumes: ``CHANNEL_CREATE`` adds a call,
``CHANNEL_PROGRESS``/``ANSWER``/``BRIDGE`` update its state, ``CHANNEL_HANGUP_COMPLETE``
and ``CHANNEL_DESTROY`` remove it. The account is the event's ``Custom-Channel-Vars``
``Account-ID``; an event that names it later moves the call to its account.
"""

from __future__ import annotations

import json
import time
from typing import Any

from whistle_tasks.data import calls

STATES = {"CHANNEL_CREATE": "new", "CHANNEL_PROGRESS": "ringing",
          "CHANNEL_PROGRESS_MEDIA": "early media", "CHANNEL_ANSWER": "answered",
          "CHANNEL_BRIDGE": "bridged", "CHANNEL_UNBRIDGE": "answered"}
ENDS = ("CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY")
BINDINGS = tuple(f"call.{name}.*" for name in (*STATES, *ENDS))


def apply(events: list[dict[str, Any]]) -> int:
    """Apply call events in order; returns how many changed the index.

    Two Redis round trips per batch whatever its size: one pipeline reads the owners and
    current entries of the calls named, one writes every change.
    """
    r = calls.client()
    ids = list(dict.fromkeys(m["Call-ID"] for m in events
                             if isinstance(m.get("Call-ID"), str) and m["Call-ID"]))
    if not ids:
        return 0
    pipe = r.pipeline(transaction=False)
    for call_id in ids:
        pipe.hget(calls.OWNER, call_id)
    owners = {c: (o.decode() if o is not None else None) for c, o in zip(ids, pipe.execute(),
                                                                          strict=True)}
    pipe = r.pipeline(transaction=False)
    known = [c for c in ids if owners[c] is not None]
    for call_id in known:
        pipe.hget(calls.account_key(_real(owners[call_id])), call_id)
    current = {c: json.loads(v) if v else {} for c, v in zip(known, pipe.execute(),
                                                             strict=True)}
    writes = r.pipeline(transaction=False)
    changed = 0
    for msg in events:
        call_id, name = msg.get("Call-ID"), msg.get("Event-Name")
        if call_id not in owners:
            continue
        old_account = owners[call_id]
        if name in ENDS:
            if old_account is not None:
                writes.hdel(calls.account_key(_real(old_account)), call_id)
                writes.hdel(calls.OWNER, call_id)
                writes.zrem(calls.SEEN, call_id)
                owners[call_id], current[call_id] = None, {}
                changed += 1
            continue
        if name not in STATES:
            continue
        ccvs = msg.get("Custom-Channel-Vars") or {}
        account = str(ccvs.get("Account-ID") or "") or (old_account or calls.NO_ACCOUNT)
        call = {**current.get(call_id, {}), "call_id": call_id, "state": STATES[name]}
        for source, field in (("Call-Direction", "direction"),
                              ("Caller-ID-Number", "caller_id_number"),
                              ("Caller-ID-Name", "caller_id_name"),
                              ("Callee-ID-Number", "callee_id_number"),
                              ("Callee-ID-Name", "callee_id_name"),
                              ("Other-Leg-Call-ID", "other_leg_call_id"),
                              ("Switch-Hostname", "node")):
            if msg.get(source):
                call[field] = msg[source]
        if ccvs.get("Dialled-Number"):
            call["dialled_number"] = str(ccvs["Dialled-Number"])
        stamp = float(msg.get("Timestamp") or time.time())
        call.setdefault("started", stamp)
        if name == "CHANNEL_ANSWER":
            call.setdefault("answered", stamp)
        call["account_id"] = None if account == calls.NO_ACCOUNT else account
        if old_account is not None and old_account != account:
            writes.hdel(calls.account_key(_real(old_account)), call_id)
        writes.hset(calls.account_key(_real(account)), call_id, json.dumps(call))
        writes.hset(calls.OWNER, call_id, account)
        writes.zadd(calls.SEEN, {call_id: time.time()})
        owners[call_id], current[call_id] = account, call
        changed += 1
    writes.execute()
    return changed


def sweep(now: float | None = None) -> int:
    """Forget calls with no event for ``STALE_AFTER`` seconds (their hangup was lost)."""
    r = calls.client()
    cutoff = (time.time() if now is None else now) - calls.STALE_AFTER
    stale = [c.decode() for c in r.zrangebyscore(calls.SEEN, 0, cutoff)]
    for call_id in stale:
        owner = r.hget(calls.OWNER, call_id)
        pipe = r.pipeline()
        if owner is not None:
            pipe.hdel(calls.account_key(_real(owner.decode())), call_id)
        pipe.hdel(calls.OWNER, call_id)
        pipe.zrem(calls.SEEN, call_id)
        pipe.execute()
    return len(stale)


def _real(account: str) -> str | None:
    return None if account == calls.NO_ACCOUNT else account
