"""Accounts and devices as every whapp reads them (cached), and how a change forgets them.

The write side (CLI, imports) is :mod:`whistle_tasks.ops.provisioning`. Reads go through the
two-tier cache: ``accounts`` by realm and ``creds`` (a device's SIP credentials) by
``realm/username``. A change broadcast (:mod:`whistle_tasks.core.changes`) drops the local
entries; the writer has already deleted the shared (Redis) ones.

Data model (Kazoo's layout, docs/design.md "CouchDB"):

* ``accounts``: one document per account: ``name``, ``realm``, ``enabled``,
  ``pvt_account_db`` (``account/XX/YY/REST``), ``number_format`` (e164, npan, 1npan),
  ``timezone`` (IANA, for time-of-day routing; UTC when absent), ``caller_id`` and
  ``caller_id_options`` (:mod:`schemas.caller_id`).
* the account database: its devices (``pvt_type`` device, ``sip.username``,
  ``sip.password`` or only ``sip.a1_hash``, ``enabled``, ``caller_id``, ``codecs``,
  ``owner_id``...), users, groups and callflows (:mod:`whistle_tasks.data.callflows`).
* ``sip_auth``: the aggregate of every device's credentials (same ``_id`` as in the account
  database, plus ``realm``), so authentication is one view look-up.
"""

from __future__ import annotations

from typing import Any

from whistle_tasks.core import numbers as numfmt
from whistle_tasks.core.cache import MISSING, BatchedLoader, Cache
from whistle_tasks.core.changes import on_change
from whistle_tasks.core.couch import get_couch
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

NEGATIVE_TTL = 60  # an unknown realm/user is remembered this long (or until created)

_accounts = Cache("accounts")
_credentials = Cache("creds")
_number_index = Cache("number_index")


def cred_key(realm: str, username: str) -> str:
    return f"{realm.lower()}/{username.lower()}"


def account_by_realm(realm: str) -> dict[str, Any] | None:
    """``{"id", "name", "realm", "enabled", "account_db", "number_format", "timezone",
    "caller_id", "caller_id_options"}`` or None."""
    realm = realm.lower()

    def load() -> Any:  # noqa: ANN401
        rows = get_couch().view("accounts", "accounts", "by_realm", key=realm, limit=1)
        return rows[0]["value"] if rows else {"missing": True}

    value = _accounts.get(realm)
    if value is MISSING:
        value = load()
        _accounts.set(realm, value, ttl=NEGATIVE_TTL if value.get("missing") else None)
    return None if value.get("missing") else value


def credentials(realm: str, username: str) -> dict[str, Any] | None:
    """A device's SIP credentials and identity, or None when no such device exists.

    ``{"sip": {"username", "password" | "a1_hash"}, "authorizing_id", "account_id",
    "enabled", "name", "owner_id"}``.
    """
    key = cred_key(realm, username)
    value = _credentials.get(key)
    if value is MISSING:
        value = _cold_credentials.get(key)
    return None if value.get("missing") else value


def _read_credentials(keys: list[str]) -> dict[str, dict[str, Any]]:
    """The cold read of :func:`credentials`: every key missed at once in one multi-key
    read of the view (the threads of a worker missing together share it), cached."""
    rows = get_couch().view("sip_auth", "credentials", "by_realm_user",
                            keys=[key.split("/", 1) for key in keys])
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("value") and "key" in row:
            found.setdefault(cred_key(*row["key"]), row["value"])
    if found:
        _credentials.set_many(found)
    for key in keys:
        if key not in found:
            found[key] = {"missing": True}
            _credentials.set(key, found[key], ttl=NEGATIVE_TTL)
    return found


_cold_credentials = BatchedLoader(_read_credentials)


PRIME_PAGE = 5_000  # documents per CouchDB read when priming


def prime(limit: int | None = None, hot: list[tuple[str, str]] | None = None,
          page: int = PRIME_PAGE) -> int:
    """Load every account and up to ``limit`` credentials into the caches (worker start);
    returns the count. ``limit`` defaults to ``settings.prime_credentials``.

    ``hot`` (realm, username) pairs — e.g. the devices registered now — are read first, by
    multi-key reads of the ``credentials/by_realm_user`` view (``page`` keys a request);
    the rest, up to ``limit``, in pages of ``_all_docs`` (no index needed, so a freshly
    provisioned or restarted CouchDB answers at once). Start time and memory stay bounded
    however many devices there are (``bench/registrar_start.py`` measures both); a
    credential not primed is read from CouchDB on its first look-up.
    """
    from whistle_tasks.core.config import settings

    limit = settings.prime_credentials if limit is None else limit
    couch = get_couch()
    found: dict[str, dict[str, Any]] = {}
    for row in couch.all_docs("accounts", include_docs=True):
        doc = row.get("doc") or {}
        if doc.get("pvt_type") == "account" and not doc.get("pvt_deleted"):
            found[doc["realm"]] = {"id": doc["_id"], "name": doc.get("name"),
                                   "realm": doc["realm"], "enabled": doc.get("enabled", True),
                                   "account_db": doc.get("pvt_account_db"),
                                   "number_format": doc.get("number_format", "e164"),
                                   "timezone": doc.get("timezone"),
                                   "caller_id": doc.get("caller_id"),
                                   "caller_id_options": doc.get("caller_id_options")}
    _accounts.set_many(found)
    primed = 0
    seen: set[str] = set()
    hot_keys = [[r.lower(), u.lower()] for r, u in (hot or [])][:max(0, limit)]
    for start in range(0, len(hot_keys), page):
        creds: dict[str, dict[str, Any]] = {}
        for row in couch.view("sip_auth", "credentials", "by_realm_user",
                              keys=hot_keys[start:start + page]):
            if "value" in row and row["value"]:
                creds[cred_key(*row["key"])] = row["value"]
        seen.update(creds)
        _credentials.set_many(creds)
        primed += len(creds)
    startkey: str | None = None
    while primed < limit:
        params: dict[str, Any] = {"include_docs": True, "limit": min(page, limit - primed) + 1}
        if startkey is not None:
            params["startkey"] = startkey
        rows = couch.all_docs("sip_auth", **params)
        more = len(rows) == params["limit"]
        if more:
            startkey = rows.pop()["id"]  # the first of the next page
        creds = {}
        for row in rows:
            doc = row.get("doc") or {}
            if doc.get("pvt_type") == "device" and not doc.get("pvt_deleted") and doc.get("sip"):
                key = cred_key(doc["realm"], doc["sip"]["username"])
                if key not in seen:
                    creds[key] = credential_value(doc)
        _credentials.set_many(creds)
        primed += len(creds)
        if not more:
            break
    return len(found) + primed


def credential_value(doc: dict[str, Any]) -> dict[str, Any]:
    """What the ``credentials/by_realm_user`` view emits for a device document."""
    return {"sip": doc["sip"], "authorizing_id": doc["_id"],
            "account_id": doc.get("pvt_account_id"),
            "enabled": doc.get("enabled", True) is not False,
            "name": doc.get("name"), "owner_id": doc.get("owner_id"),
            "caller_id": doc.get("caller_id"),
            "caller_id_options": doc.get("caller_id_options"), "codecs": doc.get("codecs"),
            "call_timeout": doc.get("call_timeout"), "sip_headers": doc.get("sip_headers")}


def forget_account(realm: str, *, shared: bool) -> None:
    """Drop a cached account (``shared``: in Redis too, the writer's duty)."""
    (_accounts.delete if shared else _accounts.delete_local)(realm.lower())


def forget_credentials(realm: str, username: str, *, shared: bool) -> None:
    key = cred_key(realm, username)
    (_credentials.delete if shared else _credentials.delete_local)(key)


def global_number_key(number: str) -> str:
    """The id of a number in the system-wide ``numbers`` index (E.164 when it is one)."""
    try:
        return numfmt.to_e164(number)
    except (TypeError, ValueError):
        return number


def number_owner(number: str) -> dict[str, Any] | None:
    """``{"realm", "account_id", "number"}`` of the account that owns ``number`` system-wide
    (for calls from outside, e.g. a carrier's DID), or None."""
    key = global_number_key(number)
    value = _number_index.get(key)
    if value is MISSING:
        doc = get_couch().get_or_none("numbers", key)
        value = {"realm": doc["realm"], "account_id": doc["account_id"],
                 "number": doc["number"]} if doc else {"missing": True}
        _number_index.set(key, value, ttl=NEGATIVE_TTL if doc is None else None)
    return None if value.get("missing") else value


def forget_numbers(account_id: str, number: str, *, shared: bool) -> None:
    """Drop the system-wide index entry of ``number`` (``shared``: in Redis too)."""
    if shared:
        _number_index.delete(global_number_key(number))
    else:
        _number_index.clear_local()


@on_change("callflow", "number")
def _number_changed(change: dict[str, Any]) -> None:
    forget_numbers(str(change.get("Account-ID", "")), "", shared=False)


@on_change("device")
def _device_changed(change: dict[str, Any]) -> None:
    if change.get("Realm") and change.get("Username"):
        forget_credentials(change["Realm"], change["Username"], shared=False)
    else:
        _credentials.clear_local()


@on_change("account")
def _account_changed(change: dict[str, Any]) -> None:
    if change.get("Realm"):
        forget_account(change["Realm"], shared=False)
    else:
        _accounts.clear_local()
