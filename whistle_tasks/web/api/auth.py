"""Who is asking: every ``/v1`` request but health and the OpenAPI document carries a key.

``Authorization: Bearer <key>`` (or ``X-Api-Key: <key>``); never in the URL, so a key can
reach no access log. An account's key sees and changes only its own account: any other
account's id answers 404, exactly as an id that does not exist (nothing is revealed);
what only the operator may do (create accounts) answers 403 to an account's key.
"""

from __future__ import annotations

from typing import Any

from flask import g, request
from flask_smorest import abort

from whistle_tasks.core.couch import get_couch
from whistle_tasks.data import api_keys
from whistle_tasks.data.api_keys import Principal

PUBLIC = frozenset({"/v1/health", "/v1/openapi.json"})


def presented_key() -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("X-Api-Key")


def check() -> None:
    """``before_request``: the principal of the key, or 401."""
    if not request.path.startswith("/v1/") or request.path in PUBLIC:
        return None
    principal = api_keys.authenticate(presented_key())
    if principal is None:
        abort(401, message="a valid API key is required (Authorization: Bearer <key>)",
              headers={"WWW-Authenticate": 'Bearer realm="whistle"'})
    g.principal = principal
    return None


def principal() -> Principal:
    return g.principal


def require_system() -> None:
    if not principal().is_system:
        abort(403, message="only the operator's (system) key may do this")


def account(account_id: str) -> dict[str, Any]:
    """The account document ``account_id`` if this key may see it, else 404."""
    who = principal()
    if not who.is_system and who.account_id != account_id:
        abort(404, message="no such account")
    doc = get_couch().get_or_none("accounts", account_id)
    if not doc or doc.get("pvt_type") != "account" or doc.get("pvt_deleted"):
        abort(404, message="no such account")
    return doc
