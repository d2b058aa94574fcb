"""Which caller id a bridge presents: one rule, for the router's answers and every bridge a
callflow makes.

Today: the calling device's configured caller id (``caller_id.name`` / ``.number`` of its
document), as the router always did; nothing when it has none (FreeSWITCH then passes the
caller's own). A call forwarded by a user that does not keep the caller's id presents the
forwarding user's. Issue #15 (internal/external caller id, device > user > account,
per-call overrides) extends this function, not its callers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from whistle_tasks.data import accounts


def configured(doc: Mapping[str, Any] | None) -> dict[str, str]:
    """``Caller-ID-Name`` / ``Caller-ID-Number`` of a document's ``caller_id``."""
    caller_id = (doc or {}).get("caller_id") or {}
    out: dict[str, str] = {}
    if not isinstance(caller_id, Mapping):
        return out
    if caller_id.get("name"):
        out["Caller-ID-Name"] = str(caller_id["name"])
    if caller_id.get("number"):
        out["Caller-ID-Number"] = str(caller_id["number"])
    return out


def for_bridge(caller: Mapping[str, Any], *, account: Mapping[str, Any] | None = None,
               override: Mapping[str, Any] | None = None,
               forwarded_by: Mapping[str, Any] | None = None,
               keep_caller_id: bool = True) -> dict[str, str]:
    """The caller id fields of a bridge for a call from ``caller`` (its
    ``Custom-Channel-Vars``: ``Realm`` and ``Username`` of an authenticated device).

    ``override``: the ``caller_id`` of the number or node that places the bridge (wins).
    ``forwarded_by``: the user document whose call forwarding places this bridge; unless
    ``keep_caller_id``, the callee sees that user's caller id instead of the caller's.
    """
    if override:
        chosen = configured({"caller_id": override})
        if chosen:
            return chosen
    if forwarded_by is not None and not keep_caller_id:
        own = configured(forwarded_by)
        if own:
            return own
    realm, user = caller.get("Realm"), caller.get("Username")
    if not (realm and user):
        return {}
    return configured(accounts.credentials(str(realm), str(user)))
