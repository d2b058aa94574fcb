"""Where redundant bridges keep their leases in Redis (written by
``switch_bridge/redundancy.py``, read by ``whistle status``): one place for the key names.

Per FreeSWITCH hostname ``H``:

* ``whistle:bridge:lease:H``: the Server-ID of the active bridge (expires with the lease);
* ``whistle:bridge:fence:H``: the fencing counter (``INCR`` at each acquisition);
* ``whistle:bridge:ckpt:H``: the checkpoint (``core``, ``seq``, ``token``, ``owner``);
* ``whistle:bridge:members:H``: every bridge listing the node, ``role unix-time``,
  refreshed each second.
"""

from __future__ import annotations

import time
from typing import Any

import redis

PREFIX = "whistle:bridge:"
#: members seen within this many seconds are listed
MEMBER_TTL_S = 5.0


def lease_key(host: str) -> str:
    return f"{PREFIX}lease:{host}"


def fence_key(host: str) -> str:
    return f"{PREFIX}fence:{host}"


def checkpoint_key(host: str) -> str:
    return f"{PREFIX}ckpt:{host}"


def members_key(host: str) -> str:
    return f"{PREFIX}members:{host}"


def text(value: Any) -> str:  # noqa: ANN401 - a Redis reply
    return value.decode() if isinstance(value, bytes) else str(value or "")


def bridges_of_nodes(redis_url: str) -> dict[str, dict[str, Any]]:
    """Per FreeSWITCH hostname: the active bridge (the lease holder, None when nobody holds
    it) and every bridge seen lately with its role. Raises ``redis.RedisError``."""
    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    out: dict[str, dict[str, Any]] = {}
    now = time.time()
    for raw in client.scan_iter(match=f"{PREFIX}members:*", count=100):
        host = text(raw)[len(f"{PREFIX}members:"):]
        members = {}
        for sid, value in client.hgetall(raw).items():
            role, _, at = text(value).partition(" ")
            try:
                fresh = now - float(at) <= MEMBER_TTL_S
            except ValueError:
                fresh = False
            if fresh:
                members[text(sid)] = role
        if not members:
            continue
        active = client.get(lease_key(host))
        out[host] = {"active": text(active) if active else None, "bridges": members}
    return out
