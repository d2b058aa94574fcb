"""The calls in progress, per account: a small live index in Redis.

Written by the ``cdr`` whapp from the call events (``whistle_tasks.whapps.cdr.live``),
read here by the API. Why Redis and not the API's memory: every API process (and the
CLI) must see the same calls, an API restart must not forget them, and the cdr worker
already consumes the call events. Layout:

* ``whistle:calls:<account id>`` (hash): call id → the call as JSON;
* ``whistle:calls:owner`` (hash): call id → account id (or ``-`` before one is known);
* ``whistle:calls:seen`` (sorted set): call id → last event time, so an entry whose
  hangup was never seen (a lost node) is swept after ``STALE_AFTER`` seconds.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from whistle_tasks.core.config import settings

PREFIX = "whistle:calls:"
OWNER = PREFIX + "owner"
SEEN = PREFIX + "seen"
NO_ACCOUNT = "-"
STALE_AFTER = 6 * 3600

_client: redis.Redis | None = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.redis_url, socket_timeout=2,
                                       socket_connect_timeout=2)
    return _client


def account_key(account_id: str | None) -> str:
    return PREFIX + (account_id or NO_ACCOUNT)


def in_progress(account_id: str | None) -> list[dict[str, Any]]:
    """The account's calls in progress (``None``: those of no known account), oldest first."""
    raw = client().hvals(account_key(account_id))
    calls = [json.loads(v) for v in raw]
    return sorted(calls, key=lambda c: (c.get("started") or 0, c.get("call_id", "")))


def get(call_id: str) -> dict[str, Any] | None:
    """One call in progress (with its ``account_id``), or None."""
    owner = client().hget(OWNER, call_id)
    if owner is None:
        return None
    account = owner.decode()
    raw = client().hget(account_key(None if account == NO_ACCOUNT else account), call_id)
    return json.loads(raw) if raw else None
