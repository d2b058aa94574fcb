"""Writing accounts, devices and numbers: the one place that changes them.

Every change follows the same order, so no cache can serve a stale answer after it:
write CouchDB → delete the shared (Redis) cache entries → broadcast the change (every
bridge and worker drops its own copy; the publish is confirmed before we return).
Errors are :class:`ProvisioningError` with a message fit for an operator.
"""

from __future__ import annotations

import collections
import hashlib
import time
import uuid
from collections.abc import Mapping
from typing import Any

from schemas import caller_id as cid
from schemas.route import GATEWAY_INVITE_FORMATS
from whistle_tasks.core import changes
from whistle_tasks.core import numbers as numfmt
from whistle_tasks.core.couch import Conflict, account_db, get_couch
from whistle_tasks.core.log import get_logger
from whistle_tasks.data import accounts

log = get_logger(__name__)

NUMBER_TARGETS = ("device", "uri", "gateway", "app", "error")
#: refused writes by reason (``refused_caller_id``), for metrics and tests
STATS: collections.Counter[str] = collections.Counter()


class ProvisioningError(ValueError):
    """A provisioning request that cannot be done (unknown realm, duplicate user...).

    ``field``: the request field the refusal is about, when the refusal knows it (the API
    names it in its error)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _now() -> int:
    return int(time.time())


def caller_id_changes(changes_: Mapping[str, Any],
                      current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``changes_`` with its ``caller_id`` / ``caller_id_options`` checked
    (:mod:`schemas.caller_id`; :class:`ProvisioningError` naming the field) and, for an
    update of ``current``, merged into what it has field by field (an empty value removes
    a field). Used by every write of a device, user or account, CLI and API alike."""
    out = dict(changes_)
    try:
        if out.get("caller_id") is not None:
            raw = out["caller_id"]
            checked = cid.check(raw)
            if current is None:
                out["caller_id"] = checked
            else:
                expanded = {k: v for k, v in raw.items() if k in cid.KINDS}
                flat = {k: raw[k] for k in cid.FIELDS if k in raw}
                if flat:
                    expanded["internal"] = {**(expanded.get("internal") or {}), **flat}
                out["caller_id"] = cid.merge(current.get("caller_id"), expanded)
        if out.get("caller_id_options") is not None:
            options = cid.check_options(out["caller_id_options"])
            if current is not None:
                options = {**cid.normalize_options(current.get("caller_id_options")),
                           **options}
            out["caller_id_options"] = options
    except cid.CallerIdError as exc:
        STATS["refused_caller_id"] += 1
        log.warning("caller id refused: %s", exc)
        field = next(iter(exc.errors), "caller_id").split(".", 1)[0]
        raise ProvisioningError(str(exc), field=field) from None
    return out


def a1_hash(username: str, realm: str, password: str) -> str:
    """md5("user:realm:password") in hex, as SIP digest (and FreeSWITCH's a1-hash) wants."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode(),  # noqa: S324 - SIP digest
                       usedforsecurity=False).hexdigest()


# --- accounts -----------------------------------------------------------------------------

def create_account(name: str, realm: str, *, number_format: str = "e164",
                   enabled: bool = True, timezone: str | None = None) -> dict[str, Any]:
    realm = realm.strip().lower()
    if not realm or "/" in realm or " " in realm:
        raise ProvisioningError(f"invalid realm {realm!r}")
    if number_format not in numfmt.FORMATS:
        raise ProvisioningError(f"number format must be one of {', '.join(numfmt.FORMATS)}, "
                                f"not {number_format!r}")
    check_timezone(timezone)
    couch = get_couch()
    couch.ensure_system()
    if couch.view("accounts", "accounts", "by_realm", key=realm, limit=1):
        raise ProvisioningError(f"realm {realm} already belongs to an account")
    account_id = uuid.uuid4().hex
    db = account_db(account_id)
    doc = {"_id": account_id, "pvt_type": "account", "name": name, "realm": realm,
           "enabled": enabled, "number_format": number_format, "pvt_account_db": db,
           "pvt_created": _now(), "pvt_modified": _now()}
    if timezone:
        doc["timezone"] = timezone
    couch.ensure_db(db)
    for ddoc in couch.design_docs("account"):
        couch.install_design(db, ddoc)
    saved = couch.save("accounts", doc)
    accounts.forget_account(realm, shared=True)
    changes.broadcast("created", "account", account_id, realm=realm, account_id=account_id)
    return saved


def get_account(realm: str) -> dict[str, Any]:
    """The account document of ``realm`` (uncached: provisioning wants the truth)."""
    couch = get_couch()
    rows = couch.view("accounts", "accounts", "by_realm", key=realm.strip().lower(), limit=1,
                      include_docs=True)   # one request: every API call makes this one
    if not rows:
        raise ProvisioningError(f"unknown realm {realm}")
    return rows[0].get("doc") or couch.get("accounts", rows[0]["id"])


def list_accounts() -> list[dict[str, Any]]:
    couch = get_couch()
    return [row["value"] for row in couch.view("accounts", "accounts", "by_realm")]


def check_timezone(timezone: str | None) -> None:
    from schemas.callflow import TIMEZONE

    if timezone is not None and not TIMEZONE.ok(timezone):
        raise ProvisioningError(f"unknown time zone {timezone!r} (an IANA name: Europe/Paris)")


def set_account_enabled(realm: str, enabled: bool) -> dict[str, Any]:
    return update_account(realm, {"enabled": enabled})


def update_account(realm: str, changes_: dict[str, Any]) -> dict[str, Any]:
    """Change fields of an account (``enabled``, ``timezone``, ``number_format``,
    ``caller_id``, ``caller_id_options``)."""
    if "timezone" in changes_:
        check_timezone(changes_["timezone"])
    if "number_format" in changes_ and changes_["number_format"] not in numfmt.FORMATS:
        raise ProvisioningError(f"number format must be one of {', '.join(numfmt.FORMATS)}")
    account = get_account(realm)
    changes_ = caller_id_changes(changes_, account)
    saved = get_couch().update("accounts", account["_id"],
                               lambda cur: None if cur is None else
                               {**cur, **changes_, "pvt_modified": _now()})
    accounts.forget_account(account["realm"], shared=True)
    changes.broadcast("edited", "account", account["_id"], realm=account["realm"],
                      account_id=account["_id"])
    return saved or account


# --- devices ------------------------------------------------------------------------------

def _find_device(realm: str, username: str) -> dict[str, Any] | None:
    rows = get_couch().view("sip_auth", "credentials", "by_realm_user",
                            key=[realm.lower(), username.lower()], limit=1)
    return rows[0] if rows else None


def create_device(realm: str, username: str, *, password: str | None = None,
                  a1: str | None = None, name: str | None = None,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A device with SIP credentials (``password``, or only its ``a1`` hash)."""
    account = get_account(realm)
    doc = _device_doc(account, {**(extra or {}), "username": username, "password": password,
                                "a1_hash": a1, "name": name})
    realm, username = account["realm"], doc["sip"]["username"]
    if _find_device(realm, username):
        raise ProvisioningError(f"device {username}@{realm} already exists")
    _write_device(doc)
    accounts.forget_credentials(realm, username, shared=True)
    changes.broadcast("created", "device", doc["_id"], realm=realm, username=username,
                      account_id=account["_id"])
    return doc


def create_devices(realm: str, rows: list[dict[str, Any]],
                   chunk: int = 500) -> list[tuple[int, str, str]]:
    """Create many devices of one realm at once (imports, benchmarks).

    Each row is ``{"username", "password" | "a1_hash", "name"?, ...extra}``. Returns one
    ``(row index, outcome, reason)`` per row: ``created``, ``skipped`` (the user exists
    already) or ``failed`` (with the reason). Written with ``_bulk_docs`` in chunks; one
    change broadcast for the realm at the end.
    """
    account = get_account(realm)
    realm = account["realm"]
    couch = get_couch()
    existing = {row["key"][1] for row in couch.view(
        "sip_auth", "credentials", "by_realm_user", startkey=[realm], endkey=[realm, {}])}
    results: list[tuple[int, str, str]] = []
    docs: list[tuple[int, dict[str, Any]]] = []
    seen: set[str] = set()
    for index, row in enumerate(rows):
        try:
            doc = _device_doc(account, row)
        except ProvisioningError as exc:
            results.append((index, "failed", str(exc)))
            continue
        username = doc["sip"]["username"]
        if username in existing or username in seen:
            results.append((index, "skipped", f"device {username}@{realm} already exists"))
            continue
        seen.add(username)
        docs.append((index, doc))
    for start in range(0, len(docs), chunk):
        batch = docs[start:start + chunk]
        outcome = couch.bulk_docs(account["pvt_account_db"], [d for _, d in batch])
        aggregate = []
        for (index, doc), result in zip(batch, outcome, strict=True):
            if result.get("error"):
                results.append((index, "failed", f"{result['error']}: {result.get('reason')}"))
            else:
                aggregate.append(doc)
                results.append((index, "created", ""))
        couch.bulk_docs("sip_auth", aggregate)
        for doc in aggregate:
            accounts.forget_credentials(realm, doc["sip"]["username"], shared=True)
    if docs:
        changes.broadcast("created", "device", "*", realm=realm, account_id=account["_id"])
        # build the credentials index now, not on the first authentication
        couch.view("sip_auth", "credentials", "by_realm_user", limit=1)
    return sorted(results)


def _device_doc(account: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """A new device document from a row; raises :class:`ProvisioningError` when invalid."""
    username = str(row.get("username") or "").strip().lower()
    if not username or any(c in username for c in " @:;<>\"'/\\\n\r\t\0"):
        raise ProvisioningError(f"invalid SIP username {username!r}")
    password, a1 = row.get("password") or None, row.get("a1_hash") or None
    if bool(password) == bool(a1):
        raise ProvisioningError("give exactly one of a password or an a1-hash")
    sip: dict[str, Any] = {"username": username}
    if password:
        sip["password"] = str(password)
    else:
        a1 = str(a1).lower()
        if len(a1) != 32 or any(c not in "0123456789abcdef" for c in a1):
            raise ProvisioningError("an a1-hash is 32 hex digits: md5(user:realm:password)")
        sip["a1_hash"] = a1
    extra = caller_id_changes({k: v for k, v in row.items()
                               if k not in ("username", "password", "a1_hash", "name")
                               and v not in (None, "")})
    return {"_id": uuid.uuid4().hex, "pvt_type": "device", "name": row.get("name") or username,
            "enabled": True, "sip": sip, "realm": account["realm"],
            "pvt_account_id": account["_id"], "pvt_account_db": account["pvt_account_db"],
            "pvt_created": _now(), "pvt_modified": _now(), **extra}


def _write_device(doc: dict[str, Any]) -> dict[str, Any]:
    """Write a device to its account database and to the ``sip_auth`` aggregate."""
    couch = get_couch()
    saved = couch.save(doc["pvt_account_db"], doc)
    aggregate = {k: v for k, v in saved.items() if k != "_rev"}
    couch.update("sip_auth", saved["_id"], lambda _cur: dict(aggregate))
    return saved


def get_device(realm: str, username: str) -> dict[str, Any]:
    found = _find_device(realm, username)
    if found is None:
        get_account(realm)  # unknown realm gets its own message
        raise ProvisioningError(f"unknown device {username}@{realm.lower()}")
    return get_couch().get("sip_auth", found["id"])


def update_device(realm: str, username: str, changes_: dict[str, Any]) -> dict[str, Any]:
    current = get_device(realm, username)
    couch = get_couch()
    for _ in range(10):
        in_account = couch.get(current["pvt_account_db"], current["_id"])
        new = {**in_account, **caller_id_changes(changes_, in_account),
               "pvt_modified": _now()}
        try:
            saved = _write_device(new)
            break
        except Conflict:
            continue
    else:
        raise ProvisioningError(f"device {username}@{realm} keeps changing; try again")
    accounts.forget_credentials(current["realm"], current["sip"]["username"], shared=True)
    changes.broadcast("edited", "device", current["_id"], realm=current["realm"],
                      username=current["sip"]["username"], account_id=current["pvt_account_id"])
    return saved


def set_device_enabled(realm: str, username: str, enabled: bool) -> dict[str, Any]:
    return update_device(realm, username, {"enabled": enabled})


def delete_device(realm: str, username: str) -> None:
    """Soft-delete in the account database (``pvt_deleted``), remove from ``sip_auth``."""
    current = get_device(realm, username)
    couch = get_couch()
    couch.update(current["pvt_account_db"], current["_id"],
                 lambda cur: None if cur is None else
                 {**cur, "pvt_deleted": True, "pvt_modified": _now()})
    couch.delete("sip_auth", current["_id"])
    accounts.forget_credentials(current["realm"], current["sip"]["username"], shared=True)
    changes.broadcast("deleted", "device", current["_id"], realm=current["realm"],
                      username=current["sip"]["username"], account_id=current["pvt_account_id"])


def list_devices(realm: str | None = None) -> list[dict[str, Any]]:
    """Devices (from ``sip_auth``), optionally of one realm, sorted by realm and user."""
    couch = get_couch()
    if realm:
        get_account(realm)
        rows = couch.view("sip_auth", "credentials", "by_realm_user",
                          startkey=[realm.lower()], endkey=[realm.lower(), {}])
    else:
        rows = couch.view("sip_auth", "credentials", "by_realm_user")
    return [{"realm": row["key"][0], "username": row["key"][1], **row["value"]} for row in rows]


def list_devices_page(realm: str, limit: int, after: str | None = None
                      ) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a realm's devices, by username: ``(devices, last username or None)``.

    ``after`` is the last username of the previous page (the API's cursor); the view is
    read from there, so a page costs the same at the 10,000th device as at the first.
    """
    realm = realm.lower()
    start = [realm, after] if after else [realm]
    rows = get_couch().view("sip_auth", "credentials", "by_realm_user", startkey=start,
                            endkey=[realm, {}], limit=limit + 1 + (1 if after else 0))
    rows = [r for r in rows if not after or r["key"][1] != after][:limit + 1]
    more = len(rows) > limit
    page = [{"realm": r["key"][0], "username": r["key"][1], **r["value"]} for r in rows[:limit]]
    return page, (page[-1]["username"] if more and page else None)


def get_device_by_id(account: dict[str, Any], device_id: str) -> dict[str, Any] | None:
    """A device of ``account`` by its id (its ``sip_auth`` document), or None."""
    doc = get_couch().get_or_none("sip_auth", device_id)
    if not doc or doc.get("pvt_type") != "device" or doc.get("pvt_account_id") != account["_id"]:
        return None
    return doc


# --- numbers ------------------------------------------------------------------------------

def parse_target(target: str) -> dict[str, Any]:
    """``device:USER`` | ``uri:SIP-URI`` | ``gateway:HOST`` | ``app:NAME`` |
    ``error:CODE[:MESSAGE]`` → the stored ``to`` object."""
    kind, _, value = target.partition(":")
    if kind not in NUMBER_TARGETS or not value:
        raise ProvisioningError(
            f"target {target!r}: expected device:USER, uri:SIP-URI, gateway:HOST, app:NAME "
            "or error:CODE[:MESSAGE]")
    if kind == "device":
        return {"type": "device", "username": value.lower()}
    if kind == "uri":
        if not value.startswith(("sip:", "sips:")):
            raise ProvisioningError(f"uri target must be a sip: URI, not {value!r}")
        return {"type": "uri", "uri": value}
    if kind == "gateway":
        return {"type": "gateway", "host": value}
    if kind == "app":
        return {"type": "app", "name": value}
    code, _, message = value.partition(":")
    if not code.isdigit() or not 400 <= int(code) <= 699:
        raise ProvisioningError(f"error target needs a SIP code 400-699, not {code!r}")
    return {"type": "error", "code": int(code), "message": message or ""}


def number_id(number: str) -> str:
    return f"number-{number}"


def normalize_number(number: str, fmt: str) -> str:
    """The key a number is stored and looked up under (``no_match`` is kept as is)."""
    number = number.strip()
    if number == "no_match":
        return number
    if not number or any(c not in "+0123456789*#" for c in number):
        raise ProvisioningError(f"invalid number {number!r}")
    return numfmt.normalize(number, fmt) if fmt else number


def check_invite_format(fmt: str) -> str:
    """A gateway's invite format (``schemas.route.GATEWAY_INVITE_FORMATS``), or an error."""
    if fmt not in GATEWAY_INVITE_FORMATS:
        raise ProvisioningError(
            f"invalid format {fmt!r} (one of {', '.join(GATEWAY_INVITE_FORMATS)})")
    return fmt


def add_number(number: str, realm: str, target: str, *, invite_format: str | None = None,
               options: dict[str, Any] | None = None, replace: bool = False) -> dict[str, Any]:
    """Route ``number`` to ``target``: the one-node callflow ``number-<number>`` (see
    :mod:`whistle_tasks.ops.callflows`). ``options``: ``caller_id``, ``codecs``,
    ``call_timeout``, ``sip_headers`` of the bridge."""
    from whistle_tasks.ops import callflows as cf_ops

    account = get_account(realm)
    to = parse_target(target)
    if invite_format:
        to["invite_format"] = check_invite_format(invite_format)
    key = normalize_number(number, account.get("number_format", "e164"))
    if to["type"] == "device":
        get_device(account["realm"], to["username"])
    doc = cf_ops.number_callflow(account, key, to, options)
    owner = _number_owner(account, key)
    if owner is not None and (not replace or owner != doc["_id"]):
        where = "" if owner == doc["_id"] else f" (callflow {owner})"
        raise ProvisioningError(f"number {key} is already assigned in {account['realm']}{where}")
    saved = cf_ops.save(account["realm"], {"numbers": doc["numbers"], "flow": doc["flow"]},
                        callflow_id=doc["_id"])
    return {**saved, "number": key, "to": to}


def get_number(number: str, realm: str) -> dict[str, Any] | None:
    """A number of the realm as :func:`list_numbers` lists it, or None."""
    from whistle_tasks.ops import callflows as cf_ops

    account = get_account(realm)
    try:
        key = normalize_number(number, account.get("number_format", "e164"))
    except (ProvisioningError, ValueError):
        return None
    owner = _number_owner(account, key)
    if owner is None:
        return None
    return _number_row(key, cf_ops.find(account["realm"], owner))


def _number_row(number: str, doc: dict[str, Any]) -> dict[str, Any]:
    from whistle_tasks.data import callflows
    from whistle_tasks.ops import callflows as cf_ops

    return {"number": number, "callflow": doc["_id"], "flow": doc["flow"],
            "target": cf_ops.describe(doc["flow"]),
            "to": callflows.target_of(doc["flow"]) or {"type": "callflow", "id": doc["_id"]}}


def _number_owner(account: dict[str, Any], key: str) -> str | None:
    rows = get_couch().view(account["pvt_account_db"], "numbers", "by_number", key=key,
                            limit=1)
    return rows[0]["id"] if rows else None


def list_numbers(realm: str) -> list[dict[str, Any]]:
    """Every number of a realm's callflows: ``{"number", "callflow", "flow", "target", "to"}``
    (``target``: the shorthand, ``device:1001``, or a summary of the callflow; ``to``: the
    number's target as ``number add`` takes it, or ``{"type": "callflow", "id"}``)."""
    from whistle_tasks.ops import callflows as cf_ops

    out = [_number_row(number, doc) for doc in cf_ops.list_all(realm)
           for number in doc.get("numbers") or ()]
    return sorted(out, key=lambda row: row["number"])


def delete_number(number: str, realm: str) -> None:
    """Unassign ``number``: its one-number callflow is deleted; a callflow with more numbers
    keeps the others."""
    from whistle_tasks.ops import callflows as cf_ops

    account = get_account(realm)
    key = normalize_number(number, account.get("number_format", "e164"))
    owner = _number_owner(account, key)
    if owner is None:
        raise ProvisioningError(f"number {key} is not assigned in {account['realm']}")
    doc = cf_ops.find(account["realm"], owner)
    rest = [n for n in doc.get("numbers") or () if n != key]
    if not rest and not doc.get("patterns"):
        cf_ops.delete(account["realm"], owner)
        return
    cf_ops.save(account["realm"], {**doc, "numbers": rest}, callflow_id=owner)
