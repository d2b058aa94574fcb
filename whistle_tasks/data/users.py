"""Users and groups as the callflow whapp reads them (cached), and how a change forgets them.

A **user** (``pvt_type`` ``user`` in the account's database) is a person: ``username``,
``name``, ``caller_id``, ``do_not_disturb``, ``call_forward`` (``enabled``, ``number`` or
``uri``, ``always``/``busy``/``no_answer``, ``keep_caller_id``) and ``voicemail_box``. A user
owns devices: a device's ``owner_id`` is the user's id. Ringing a user rings every
registered contact of every device the user owns, at once.

A **group** (``pvt_type`` ``group``) is a named list of members for ring groups: ``name``,
``members`` (``{"type": "device"|"user"|"number", "id", "timeout"?, "delay"?}``),
``strategy`` and ``timeout``.

Caches: ``user`` (``account/username``), ``user_by_id`` (``account/user id``),
``user_devices`` (``account/user id`` → device usernames) and ``group``
(``account/name``); the writer (:mod:`whistle_tasks.ops.users`) deletes the shared
entries and broadcasts; the listeners below drop the local ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from whistle_tasks.core.cache import MISSING, Cache
from whistle_tasks.core.changes import on_change
from whistle_tasks.core.couch import NotFound, get_couch

NEGATIVE_TTL = 60

_users = Cache("user")
_devices = Cache("user_devices")
_users_by_id = Cache("user_by_id")
_groups = Cache("group")


def _view(account: Mapping[str, Any], view: str, **params: Any) -> list[dict[str, Any]]:  # noqa: ANN401
    try:
        return get_couch().view(account["account_db"], "users", view, **params)
    except NotFound:    # an account database of before users
        return []


def user(account: Mapping[str, Any], username: str) -> dict[str, Any] | None:
    """The user ``username`` of an account, or None."""
    key = f"{account['id']}/{username.lower()}"
    value = _users.get(key)
    if value is MISSING:
        rows = _view(account, "by_username", key=username.lower(), limit=1, include_docs=True)
        doc = rows[0].get("doc") if rows else None
        value = doc if doc else {"missing": True}
        _users.set(key, value, ttl=NEGATIVE_TTL if doc is None else None)
    return None if value.get("missing") else value


def by_id(account: Mapping[str, Any], user_id: str) -> dict[str, Any] | None:
    """The user whose document id is ``user_id`` (a device's ``owner_id``), or None."""
    key = f"{account['id']}/{user_id}"
    value = _users_by_id.get(key)
    if value is MISSING:
        try:
            doc = get_couch().get(str(account["account_db"]), user_id)
        except NotFound:
            doc = None
        if doc is not None and (doc.get("pvt_type") != "user" or doc.get("pvt_deleted")):
            doc = None
        value = doc if doc else {"missing": True}
        _users_by_id.set(key, value, ttl=NEGATIVE_TTL if doc is None else None)
    return None if value.get("missing") else value


def devices(account: Mapping[str, Any], user_id: str) -> list[str]:
    """The usernames of the devices a user owns (sorted)."""
    key = f"{account['id']}/{user_id}"
    value = _devices.get(key)
    if value is MISSING:
        value = sorted(str(row["value"]) for row in _view(account, "devices_by_owner",
                                                          key=user_id))
        _devices.set(key, value)
    return list(value)


def group(account: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The group ``name`` of an account, or None."""
    key = f"{account['id']}/{name}"
    value = _groups.get(key)
    if value is MISSING:
        rows = _view(account, "groups_by_name", key=name, limit=1, include_docs=True)
        doc = rows[0].get("doc") if rows else None
        value = doc if doc else {"missing": True}
        _groups.set(key, value, ttl=NEGATIVE_TTL if doc is None else None)
    return None if value.get("missing") else value


def forget_user(account_id: str, username: str | None, user_id: str | None, *,
                shared: bool) -> None:
    if shared:
        if username:
            _users.delete(f"{account_id}/{username.lower()}")
        if user_id:
            _devices.delete(f"{account_id}/{user_id}")
            _users_by_id.delete(f"{account_id}/{user_id}")
    else:
        _users.clear_local()
        _devices.clear_local()
        _users_by_id.clear_local()


def forget_group(account_id: str, name: str | None, *, shared: bool) -> None:
    if shared and name:
        _groups.delete(f"{account_id}/{name}")
    else:
        _groups.clear_local()


@on_change("user", "device")
def _user_changed(change: dict[str, Any]) -> None:
    forget_user(str(change.get("Account-ID", "")), None, None, shared=False)


@on_change("group")
def _group_changed(change: dict[str, Any]) -> None:
    forget_group(str(change.get("Account-ID", "")), None, shared=False)
