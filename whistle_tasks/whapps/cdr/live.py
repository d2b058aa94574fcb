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
    """Apply call events in order; returns how many changed the index."""
    r = calls.client()
    changed = 0
    for msg in events:
        call_id = msg.get("Call-ID")
        name = msg.get("Event-Name")
        if not isinstance(call_id, str) or not call_id:
            continue
        owner = r.hget(calls.OWNER, call_id)
        old_account = owner.decode() if owner is not None else None
        if name in ENDS:
            if old_account is not None:
                pipe = r.pipeline()
                pipe.hdel(calls.account_key(_real(old_account)), call_id)
                pipe.hdel(calls.OWNER, call_id)
                pipe.zrem(calls.SEEN, call_id)
                pipe.execute()
                changed += 1
            continue
        if name not in STATES:
            continue
        ccvs = msg.get("Custom-Channel-Vars") or {}
        account = str(ccvs.get("Account-ID") or "") or (old_account or calls.NO_ACCOUNT)
        current: dict[str, Any] = {}
        if old_account is not None:
            raw = r.hget(calls.account_key(_real(old_account)), call_id)
            current = json.loads(raw) if raw else {}
        call = {**current, "call_id": call_id, "state": STATES[name]}
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
        pipe = r.pipeline()
        if old_account is not None and old_account != account:
            pipe.hdel(calls.account_key(_real(old_account)), call_id)
        pipe.hset(calls.account_key(_real(account)), call_id, json.dumps(call))
        pipe.hset(calls.OWNER, call_id, account)
        pipe.zadd(calls.SEEN, {call_id: time.time()})
        pipe.execute()
        changed += 1
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
