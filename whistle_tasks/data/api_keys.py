"""API keys as the API reads them: a key → who it is (an account, or the operator).

A key is ``whk_<id>_<secret>``: ``<id>`` (16 hex) names its document in the ``api_keys``
database, ``<secret>`` (43 url-safe characters, 256 random bits) is never stored: the
document keeps ``sha256(key)``. A hash of a 256-bit random secret cannot be brute-forced,
so a slow password hash would only cost every request. Writes (create, revoke) are
:mod:`whistle_tasks.ops.api_keys`; a revoked key is dropped from every API process's
cache by the change broadcast (type ``api_key``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from whistle_tasks.core.cache import MISSING, Cache
from whistle_tasks.core.changes import on_change
from whistle_tasks.core.couch import get_couch

DB = "api_keys"
KEY_FORMAT = re.compile(r"^whk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
NEGATIVE_TTL = 30

_keys = Cache("api_keys", ttl=300, shared=False)


@dataclass(frozen=True)
class Principal:
    """Who a key belongs to: ``account_id`` None is the operator (the system key)."""

    key_id: str
    account_id: str | None
    name: str

    @property
    def is_system(self) -> bool:
        return self.account_id is None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def authenticate(key: str | None) -> Principal | None:
    """The principal of a presented key, or None (unknown, malformed or revoked)."""
    if not key:
        return None
    m = KEY_FORMAT.match(key.strip())
    if not m:
        return None
    key_id = m.group(1)
    value = _keys.get(key_id)
    if value is MISSING:
        doc = get_couch().get_or_none(DB, key_id)
        value = ({"hash": doc["hash"], "account_id": doc.get("account_id"),
                  "name": doc.get("name", ""), "revoked": bool(doc.get("revoked"))}
                 if doc and doc.get("pvt_type") == "api_key" else {"missing": True})
        _keys.set(key_id, value, ttl=NEGATIVE_TTL if value.get("missing") else None)
    if value.get("missing") or value.get("revoked"):
        return None
    if not hmac.compare_digest(value["hash"], digest(key.strip())):
        return None
    return Principal(key_id, value.get("account_id"), value.get("name", ""))


def forget(key_id: str) -> None:
    _keys.delete_local(key_id)


@on_change("api_key")
def _key_changed(change: dict[str, Any]) -> None:
    forget(str(change.get("ID", "")))
