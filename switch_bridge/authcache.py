"""The bridge's own copy of authentication answers, per (realm, user), as Kazoo's ecallmgr.

A phone re-registers every few minutes; with this cache that costs an HTTP parse, a dict
look-up and an XML render, not an AMQP round trip. The digest nonce changes per request;
the credentials do not, and they are what is kept. Entries expire after
``settings.auth_cache_ttl``; an unknown user is remembered for a short while so a scanner
cannot turn into a registrar storm. A device or account change is broadcast on the
``configuration`` exchange and every bridge drops the affected entries at once
(:meth:`AuthCache.on_change`), so a disabled device is refused on its very next REGISTER.
"""

from __future__ import annotations

import time
from typing import Any

from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

NEGATIVE_TTL = 30.0


class AuthCache:
    """Positive answers are kept under the request's (Auth-Realm, Auth-User) with the
    directory XML rendered from them (a re-registration is then an HTTP parse and a
    dictionary look-up), and indexed by the identity the registrar answered for
    (``Custom-Channel-Vars`` Realm/Username): a phone may authenticate with an IP as realm,
    but a change names the device's realm."""

    def __init__(self, ttl: float, max_entries: int = 200_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        # key -> (expires at, identity, rendered XML)
        self._positive: dict[tuple[str, str], tuple[float, tuple[str, str], bytes]] = {}
        self._identity: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._negative: dict[tuple[str, str], float] = {}
        self.stats = {"hits": 0, "misses": 0, "negative_hits": 0, "dropped_by_change": 0}

    @staticmethod
    def key(realm: str, user: str) -> tuple[str, str]:
        return realm.lower(), user.lower()

    def get(self, realm: str, user: str) -> tuple[bool, bytes | None]:
        """``(found, xml)``: the XML of a cached answer; a found ``None`` means "known to be
        refused"; ``(False, None)``: ask the registrar."""
        key = self.key(realm, user)
        now = time.monotonic()
        entry = self._positive.get(key)
        if entry is not None:
            if entry[0] >= now:
                self.stats["hits"] += 1
                return True, entry[2]
            self._forget(key)
        refused_until = self._negative.get(key)
        if refused_until is not None:
            if refused_until >= now:
                self.stats["negative_hits"] += 1
                return True, None
            del self._negative[key]
        self.stats["misses"] += 1
        return False, None

    def put(self, realm: str, user: str, answer: dict[str, Any] | None,
            xml: bytes = b"") -> None:
        """Remember an ``authn_resp`` with its rendered XML, or a refusal (``None``) for a
        shorter time."""
        key = self.key(realm, user)
        if answer is None:
            if len(self._negative) >= self.max_entries:
                self._negative.pop(next(iter(self._negative)))
            self._negative[key] = time.monotonic() + min(NEGATIVE_TTL, self.ttl)
            return
        if len(self._positive) >= self.max_entries:
            self._forget(next(iter(self._positive)))
        self._negative.pop(key, None)
        self._forget(key)
        ccvs = answer.get("Custom-Channel-Vars") or {}
        identity = self.key(str(ccvs.get("Realm", realm)), str(ccvs.get("Username", user)))
        self._positive[key] = (time.monotonic() + self.ttl, identity, xml)
        self._identity.setdefault(identity, set()).add(key)

    def identity_of(self, realm: str, user: str) -> tuple[str, str] | None:
        """The identity (realm, user) the registrar answered for a cached request."""
        entry = self._positive.get(self.key(realm, user))
        return entry[1] if entry is not None else None

    def _forget(self, key: tuple[str, str]) -> None:
        entry = self._positive.pop(key, None)
        if entry is None:
            return
        identity = entry[1]
        keys = self._identity.get(identity)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._identity[identity]

    def _drop_identity(self, identity: tuple[str, str]) -> int:
        keys = self._identity.pop(identity, set()) | {identity}
        dropped = 0
        for key in keys:
            dropped += self._positive.pop(key, None) is not None
        return dropped

    def on_change(self, change: dict[str, Any]) -> None:
        """A ``configuration`` broadcast: drop what it makes stale."""
        kind, realm, user = change.get("Type"), change.get("Realm"), change.get("Username")
        if kind not in ("device", "account"):
            return
        if realm and user and kind == "device":
            identity = self.key(realm, user)
            dropped = self._drop_identity(identity)
            for key in [k for k in self._negative if k[1] == identity[1]]:
                del self._negative[key]
        else:
            wanted = realm.lower() if realm else None
            identities = [i for i in self._identity if wanted is None or i[0] == wanted]
            dropped = sum(self._drop_identity(i) for i in identities)
            self._negative.clear()
        self.stats["dropped_by_change"] += dropped
        if dropped:
            log.info("%s %s changed: %d cached credentials dropped", kind,
                     f"{user}@{realm}" if user else realm or "(all)", dropped)

    def __len__(self) -> int:
        return len(self._positive)
