"""Writing users and groups (the CLI and the API share these functions).

A user owns devices (``add_device`` sets the device's ``owner_id``), has a caller id, call
forwarding (always / busy / no answer; to a number or a SIP URI; keeping the caller's id or
not), do-not-disturb and a voicemail box (the box's number; the box itself is the voicemail
whapp's). A group is a named list of ring group members. Every write: CouchDB → the shared
cache entries deleted → the change broadcast.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from schemas import callflow as cf
from whistle_tasks.core import changes
from whistle_tasks.core.couch import Conflict, get_couch
from whistle_tasks.data import users
from whistle_tasks.ops.provisioning import (
    ProvisioningError,
    caller_id_changes,
    get_account,
    get_device,
    update_device,
)

USERNAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
FORWARD_WHEN = ("always", "busy", "no_answer")


def _now() -> int:
    return int(time.time())


def _username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME.fullmatch(name):
        raise ProvisioningError(f"invalid user name {username!r} (letters, digits, _ . -)")
    return name


def _find(account: Mapping[str, Any], username: str) -> dict[str, Any] | None:
    rows = get_couch().view(account["pvt_account_db"], "users", "by_username",
                            key=username, limit=1, include_docs=True)
    return rows[0]["doc"] if rows and rows[0].get("doc") else None


def _changed(account: Mapping[str, Any], action: str, doc: Mapping[str, Any]) -> None:
    users.forget_user(account["_id"], doc.get("username"), doc.get("_id"), shared=True)
    changes.broadcast(action, "user", doc["_id"], realm=account["realm"],
                      username=doc.get("username"), account_id=account["_id"])


def create_user(realm: str, username: str, *, name: str | None = None,
                caller_id: Mapping[str, Any] | None = None,
                caller_id_options: Mapping[str, Any] | None = None,
                voicemail_box: str | None = None) -> dict[str, Any]:
    account = get_account(realm)
    username = _username(username)
    if _find(account, username) is not None:
        raise ProvisioningError(f"user {username} already exists in {account['realm']}")
    doc: dict[str, Any] = {"_id": uuid.uuid4().hex, "pvt_type": "user", "username": username,
                           "name": name or username, "do_not_disturb": False,
                           "pvt_account_id": account["_id"], "pvt_created": _now(),
                           "pvt_modified": _now()}
    doc.update(caller_id_changes({"caller_id": caller_id or None,
                                  "caller_id_options": caller_id_options or None}))
    doc = {k: v for k, v in doc.items() if v is not None}
    if voicemail_box:
        doc["voicemail_box"] = str(voicemail_box)
    saved = get_couch().save(account["pvt_account_db"], doc)
    _changed(account, "created", saved)
    return saved


def get_user(realm: str, username: str) -> dict[str, Any]:
    account = get_account(realm)
    found = _find(account, username.strip().lower())
    if found is None:
        raise ProvisioningError(f"no user {username} in {account['realm']}")
    return found


def list_users(realm: str) -> list[dict[str, Any]]:
    """Every user of a realm, with ``devices``: the usernames of the devices it owns."""
    account = get_account(realm)
    couch = get_couch()
    db = account["pvt_account_db"]
    owned: dict[str, list[str]] = {}
    for row in couch.view(db, "users", "devices_by_owner"):
        owned.setdefault(row["key"], []).append(row["value"])
    rows = couch.view(db, "users", "by_username", include_docs=True)
    return [{**row["doc"], "devices": sorted(owned.get(row["id"], []))}
            for row in rows if row.get("doc")]


def user_devices(realm: str, user_id: str) -> list[str]:
    """The usernames of the devices the user ``user_id`` owns."""
    account = get_account(realm)
    rows = get_couch().view(account["pvt_account_db"], "users", "devices_by_owner",
                            key=user_id)
    return sorted(row["value"] for row in rows)


def update_user(realm: str, username: str, changes_: Mapping[str, Any]) -> dict[str, Any]:
    account = get_account(realm)
    current = get_user(realm, username)
    couch = get_couch()
    for _ in range(10):
        doc = couch.get(account["pvt_account_db"], current["_id"])
        try:
            saved = couch.save(account["pvt_account_db"],
                               {**doc, **caller_id_changes(changes_, doc),
                                "pvt_modified": _now()})
            break
        except Conflict:
            continue
    else:
        raise ProvisioningError(f"user {username} keeps changing; try again")
    _changed(account, "edited", saved)
    return saved


def set_forward(realm: str, username: str, *, target: str | None, when: Iterable[str] = (),
                keep_caller_id: bool = True) -> dict[str, Any]:
    """Forward the user's calls to ``target`` (a number, or a ``sip:`` URI) ``when``
    (``always``, ``busy``, ``no_answer``; none given: always); ``target`` None: off."""
    if target is None:
        return update_user(realm, username, {"call_forward": {"enabled": False}})
    when = list(when) or ["always"]
    for item in when:
        if item not in FORWARD_WHEN:
            raise ProvisioningError(f"forward when {item!r}? one of {', '.join(FORWARD_WHEN)}")
    forward: dict[str, Any] = {"enabled": True, "keep_caller_id": bool(keep_caller_id),
                               **{k: k in when for k in FORWARD_WHEN}}
    if target.startswith(("sip:", "sips:")):
        if not cf.SIP_URI.ok(target):
            raise ProvisioningError(f"invalid SIP URI {target!r}")
        forward["uri"] = target
    elif cf.NUMBER.ok(target):
        forward["number"] = target
    else:
        raise ProvisioningError(f"forward to a number or a sip: URI, not {target!r}")
    return update_user(realm, username, {"call_forward": forward})


def set_dnd(realm: str, username: str, on: bool) -> dict[str, Any]:
    return update_user(realm, username, {"do_not_disturb": bool(on)})


def add_device(realm: str, username: str, device: str) -> dict[str, Any]:
    """The user ``username`` owns the device ``device`` from now on."""
    account = get_account(realm)
    user = get_user(realm, username)
    previous = get_device(realm, device).get("owner_id")
    saved = update_device(realm, device, {"owner_id": user["_id"]})
    for owner in {previous, user["_id"]} - {None}:
        users.forget_user(account["_id"], None, str(owner), shared=True)
    changes.broadcast("edited", "user", user["_id"], realm=account["realm"],
                      username=user["username"], account_id=account["_id"])
    return saved


def delete_user(realm: str, username: str) -> None:
    account = get_account(realm)
    user = get_user(realm, username)
    couch = get_couch()
    for row in couch.view(account["pvt_account_db"], "users", "devices_by_owner",
                          key=user["_id"]):
        update_device(realm, row["value"], {"owner_id": None})
    couch.delete(account["pvt_account_db"], user["_id"])
    _changed(account, "deleted", user)


# --- groups --------------------------------------------------------------------------------

def parse_member(text: str) -> dict[str, Any]:
    """``device:1001``, ``user:alice``, ``number:+14155550100``, each with optional
    ``,timeout=20,delay=5``."""
    head, *knobs = text.split(",")
    kind, _, ident = head.partition(":")
    if kind not in cf.MEMBER_TYPES or not ident:
        raise ProvisioningError(f"member {text!r}: expected device:USER, user:NAME or "
                                "number:NUMBER (then ,timeout=S ,delay=S)")
    member: dict[str, Any] = {"type": kind, "id": ident.strip()}
    for knob in knobs:
        key, _, value = knob.partition("=")
        if key not in ("timeout", "delay") or not value.isdigit():
            raise ProvisioningError(f"member {text!r}: {knob!r} is not timeout=S or delay=S")
        member[key] = int(value)
    return check_member(member, text)


def check_member(member: Mapping[str, Any], label: str | None = None) -> dict[str, Any]:
    """A ring group member as declared (``schemas.callflow.MEMBER``), or
    :class:`ProvisioningError` naming each bad field."""
    errors = cf.MEMBER.errors(member)
    if errors:
        raise ProvisioningError(f"member {label or dict(member)!r}: " + "; ".join(
            f"{k}: {', '.join(v)}" for k, v in errors.items()))
    return dict(member)


def _check_members(realm: str, account: Mapping[str, Any],
                   members: list[dict[str, Any]]) -> None:
    for member in members:
        if member["type"] == "device":
            get_device(realm, member["id"])
        elif member["type"] == "user":
            get_user(realm, member["id"])


def save_group(realm: str, name: str, members: list[dict[str, Any]], *,
               strategy: str = "simultaneous", timeout: int | None = None) -> dict[str, Any]:
    """Create or replace the group ``name``."""
    account = get_account(realm)
    if not cf.NAME.ok(name):
        raise ProvisioningError(f"invalid group name {name!r}: {cf.NAME.expected}")
    if strategy not in ("simultaneous", "sequential"):
        raise ProvisioningError("strategy: simultaneous or sequential")
    _check_members(realm, account, members)
    couch = get_couch()
    db = account["pvt_account_db"]
    rows = couch.view(db, "users", "groups_by_name", key=name, limit=1, include_docs=True)
    current = rows[0]["doc"] if rows and rows[0].get("doc") else None
    doc: dict[str, Any] = {**(current or {"_id": uuid.uuid4().hex, "pvt_created": _now()}),
                           "pvt_type": "group", "name": name, "members": members,
                           "strategy": strategy, "pvt_account_id": account["_id"],
                           "pvt_modified": _now()}
    if timeout:
        doc["timeout"] = int(timeout)
    saved = couch.save(db, doc)
    users.forget_group(account["_id"], name, shared=True)
    changes.broadcast("edited" if current else "created", "group", saved["_id"],
                      realm=account["realm"], account_id=account["_id"])
    return saved


def get_group(realm: str, name: str) -> dict[str, Any]:
    account = get_account(realm)
    rows = get_couch().view(account["pvt_account_db"], "users", "groups_by_name", key=name,
                            limit=1, include_docs=True)
    if not rows or not rows[0].get("doc"):
        raise ProvisioningError(f"no group {name} in {account['realm']}")
    return rows[0]["doc"]


def list_groups(realm: str) -> list[dict[str, Any]]:
    account = get_account(realm)
    rows = get_couch().view(account["pvt_account_db"], "users", "groups_by_name",
                            include_docs=True)
    return [row["doc"] for row in rows if row.get("doc")]


def delete_group(realm: str, name: str) -> None:
    account = get_account(realm)
    group = get_group(realm, name)
    get_couch().delete(account["pvt_account_db"], group["_id"])
    users.forget_group(account["_id"], name, shared=True)
    changes.broadcast("deleted", "group", group["_id"], realm=account["realm"],
                      account_id=account["_id"])
