"""Accounts, devices, numbers and registrations over HTTP.

Every write calls :mod:`whistle_tasks.ops.provisioning`, the code ``whistle account|device|
number`` runs (CouchDB, then the shared cache entries, then the change broadcast). A
:class:`~whistle_tasks.ops.provisioning.ProvisioningError` becomes a 400 (409 for a
duplicate) naming the field it is about.
"""

from __future__ import annotations

import time
from typing import Any, NoReturn

from flask.views import MethodView
from flask_smorest import Blueprint, abort

from whistle_tasks.data import registrations as regs
from whistle_tasks.ops import provisioning as prov
from whistle_tasks.ops.provisioning import ProvisioningError
from whistle_tasks.web.api import auth
from whistle_tasks.web.api import schemas as s

blp = Blueprint("provisioning", __name__, url_prefix="/v1",
                description="Accounts, devices, numbers, registrations")


def refuse(exc: ProvisioningError, field: str) -> NoReturn:
    """A provisioning refusal as a JSON error: 409 for a duplicate, else 400, naming the
    field the refusal names itself (``exc.field``), or else ``field``."""
    message = str(exc)
    code = 409 if "already" in message else 400
    abort(code, message=message, errors={"json": {exc.field or field: [message]}})


def account_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], "name": doc.get("name"), "realm": doc.get("realm"),
            "enabled": doc.get("enabled", True) is not False,
            "number_format": doc.get("number_format", "e164"),
            "caller_id": doc.get("caller_id") or {},
            "caller_id_options": doc.get("caller_id_options") or {}}


def device_view(doc: dict[str, Any]) -> dict[str, Any]:
    sip = doc.get("sip") or {}
    return {"id": doc.get("_id") or doc.get("authorizing_id"), "username": sip.get("username"),
            "realm": doc.get("realm"), "name": doc.get("name"),
            "enabled": doc.get("enabled", True) is not False,
            "auth": "password" if sip.get("password") else "a1-hash",
            "caller_id": doc.get("caller_id") or {},
            "caller_id_options": doc.get("caller_id_options") or {},
            "owner_id": doc.get("owner_id")}


# --- accounts -----------------------------------------------------------------------------

@blp.route("/accounts")
class Accounts(MethodView):
    @blp.response(200, s.AccountList)
    def get(self) -> dict[str, Any]:
        """The accounts this key may see (an account's key: its own)."""
        who = auth.principal()
        found = [a for a in prov.list_accounts() if who.is_system or a["id"] == who.account_id]
        return {"data": [{k: a.get(k) for k in ("id", "name", "realm", "enabled",
                                                "number_format")} for a in found]}

    @blp.arguments(s.AccountCreate)
    @blp.response(201, s.Account)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create an account (the operator's key only)."""
        auth.require_system()
        try:
            doc = prov.create_account(body["name"], body["realm"],
                                      number_format=body["number_format"])
        except ProvisioningError as exc:
            refuse(exc, "realm")
        return account_view(doc)


@blp.route("/accounts/<hex32:account_id>")
class AccountOne(MethodView):
    @blp.response(200, s.Account)
    def get(self, account_id: str) -> dict[str, Any]:
        return account_view(auth.account(account_id))

    @blp.arguments(s.AccountPatch)
    @blp.response(200, s.Account)
    def patch(self, body: dict[str, Any], account_id: str) -> dict[str, Any]:
        """Enable or disable the account (every device refused while disabled), or change
        its caller id (``caller_id``, ``caller_id_options``: what its devices and users
        present when they set none)."""
        account = auth.account(account_id)
        try:
            saved = prov.update_account(account["realm"], dict(body))
        except ProvisioningError as exc:
            refuse(exc, "caller_id")
        return account_view(saved)


# --- devices ------------------------------------------------------------------------------

@blp.route("/accounts/<hex32:account_id>/devices")
class Devices(MethodView):
    @blp.arguments(s.Page, location="query")
    @blp.response(200, s.DevicePage)
    def get(self, page: dict[str, Any], account_id: str) -> dict[str, Any]:
        """The account's devices by username, a page at a time (``next_cursor``)."""
        account = auth.account(account_id)
        rows, last = prov.list_devices_page(account["realm"], page["limit"], page.get("cursor"))
        data = [device_view({**r, "_id": r.get("authorizing_id")}) for r in rows]
        return {"data": data, "next_cursor": last}

    @blp.arguments(s.DeviceCreate)
    @blp.response(201, s.Device)
    def post(self, body: dict[str, Any], account_id: str) -> dict[str, Any]:
        account = auth.account(account_id)
        extra = {k: body[k] for k in ("caller_id", "caller_id_options") if body.get(k)}
        try:
            doc = prov.create_device(account["realm"], body["username"],
                                     password=body.get("password"), a1=body.get("a1_hash"),
                                     name=body.get("name"), extra=extra)
        except ProvisioningError as exc:
            refuse(exc, "password" if "hash" in str(exc) or "password" in str(exc)
                   else "username")
        return device_view(doc)


@blp.route("/accounts/<hex32:account_id>/devices/<hex32:device_id>")
class DeviceOne(MethodView):
    @staticmethod
    def _device(account_id: str, device_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        account = auth.account(account_id)
        doc = prov.get_device_by_id(account, device_id)
        if doc is None:
            abort(404, message="no such device")
        return account, doc

    @blp.response(200, s.Device)
    def get(self, account_id: str, device_id: str) -> dict[str, Any]:
        return device_view(self._device(account_id, device_id)[1])

    @blp.arguments(s.DevicePatch)
    @blp.response(200, s.Device)
    def patch(self, body: dict[str, Any], account_id: str, device_id: str) -> dict[str, Any]:
        """Change a device; it takes effect on its very next authentication."""
        account, doc = self._device(account_id, device_id)
        username = doc["sip"]["username"]
        changes: dict[str, Any] = {k: body[k] for k in ("name", "enabled", "caller_id",
                                                        "caller_id_options") if k in body}
        if body.get("password"):
            changes["sip"] = {"username": username, "password": body["password"]}
        elif body.get("a1_hash"):
            changes["sip"] = {"username": username, "a1_hash": body["a1_hash"].lower()}
        try:
            saved = prov.update_device(account["realm"], username, changes)
        except ProvisioningError as exc:
            refuse(exc, "_schema")
        return device_view(saved)

    @blp.response(204)
    def delete(self, account_id: str, device_id: str) -> None:
        account, doc = self._device(account_id, device_id)
        prov.delete_device(account["realm"], doc["sip"]["username"])


# --- numbers ------------------------------------------------------------------------------

def number_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {"number": doc["number"], "to": doc.get("to") or {}}


@blp.route("/accounts/<hex32:account_id>/numbers")
class Numbers(MethodView):
    @blp.response(200, s.NumberList)
    def get(self, account_id: str) -> dict[str, Any]:
        account = auth.account(account_id)
        return {"data": [number_view(d) for d in prov.list_numbers(account["realm"])]}

    @blp.arguments(s.NumberCreate)
    @blp.response(201, s.Number)
    def post(self, body: dict[str, Any], account_id: str) -> dict[str, Any]:
        """Route a number (as ``whistle number add``)."""
        account = auth.account(account_id)
        try:
            doc = prov.add_number(body["number"], account["realm"], body["to"],
                                  invite_format=body.get("format"), replace=body["replace"])
        except ProvisioningError as exc:
            text = str(exc)
            refuse(exc, "to" if ("target" in text or "device" in text or "uri" in text
                                 or "SIP code" in text) else "number")
        return number_view(doc)


@blp.route("/accounts/<hex32:account_id>/numbers/<number:number>")
class NumberOne(MethodView):
    @blp.response(200, s.Number)
    def get(self, account_id: str, number: str) -> dict[str, Any]:
        account = auth.account(account_id)
        doc = prov.get_number(number, account["realm"])
        if doc is None:
            abort(404, message="no such number")
        return number_view(doc)

    @blp.response(204)
    def delete(self, account_id: str, number: str) -> None:
        account = auth.account(account_id)
        try:
            prov.delete_number(number, account["realm"])
        except ProvisioningError:
            abort(404, message="no such number")


# --- registrations ------------------------------------------------------------------------

@blp.route("/accounts/<hex32:account_id>/registrations")
class Registrations(MethodView):
    @blp.response(200, s.RegistrationList)
    def get(self, account_id: str) -> dict[str, Any]:
        """Who of the account is registered where, now."""
        account = auth.account(account_id)
        now = time.time()
        data = [{"username": r["Username"], "realm": r["Realm"], "contact": r["Contact"],
                 "user_agent": r.get("User-Agent", ""), "network_ip": r.get("Network-IP", ""),
                 "expires_in": max(0, int(float(r["Event-Timestamp"]) + int(r["Expires"]) - now))}
                for r in regs.query(account["realm"])]
        return {"data": sorted(data, key=lambda r: (r["username"], r["contact"]))}
