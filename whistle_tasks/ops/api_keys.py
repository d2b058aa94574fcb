"""API keys: created for an account (``whistle api-key create --realm R``) or for the
operator (``--system``), listed, revoked. Only ``sha256(key)`` is stored
(:mod:`whistle_tasks.data.api_keys`); the key itself is shown once, at creation."""

from __future__ import annotations

import secrets
import time
from typing import Any

from whistle_tasks.core import changes
from whistle_tasks.core.couch import get_couch
from whistle_tasks.data import api_keys
from whistle_tasks.ops.provisioning import ProvisioningError, get_account


def create(realm: str | None, *, name: str = "") -> tuple[str, dict[str, Any]]:
    """A new key for the account of ``realm`` (None: a system key); ``(key, document)``."""
    account = get_account(realm) if realm else None
    key_id = secrets.token_hex(8)
    key = f"whk_{key_id}_{secrets.token_urlsafe(32)}"
    doc = {"_id": key_id, "pvt_type": "api_key", "hash": api_keys.digest(key),
           "account_id": account["_id"] if account else None,
           "realm": account["realm"] if account else None,
           "name": name or (f"{account['realm']} key" if account else "system key"),
           "created": int(time.time()), "revoked": False}
    couch = get_couch()
    couch.ensure_db(api_keys.DB)
    saved = couch.save(api_keys.DB, doc)
    return key, saved


def list_keys(realm: str | None = None) -> list[dict[str, Any]]:
    couch = get_couch()
    couch.ensure_db(api_keys.DB)
    account_id = get_account(realm)["_id"] if realm else None
    out = []
    for row in couch.all_docs(api_keys.DB, include_docs=True):
        doc = row.get("doc") or {}
        if doc.get("pvt_type") != "api_key":
            continue
        if realm and doc.get("account_id") != account_id:
            continue
        out.append({k: v for k, v in doc.items() if k not in ("hash", "_rev")})
    return sorted(out, key=lambda d: d.get("created", 0))


def revoke(key_id: str) -> None:
    couch = get_couch()
    couch.ensure_db(api_keys.DB)
    saved = couch.update(api_keys.DB, key_id, lambda cur: None if cur is None else
                         {**cur, "revoked": True, "revoked_at": int(time.time())})
    if saved is None:
        raise ProvisioningError(f"unknown API key {key_id}")
    api_keys.forget(key_id)
    changes.broadcast("edited", "api_key", key_id, account_id=saved.get("account_id"))
