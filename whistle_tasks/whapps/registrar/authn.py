"""Who may register: the answer to an ``authn_req`` (no FreeSWITCH knowledge here)."""

from __future__ import annotations

from typing import Any

from schemas.authn import identity
from whistle_tasks.core.log import get_logger
from whistle_tasks.data import accounts

log = get_logger(__name__)


def answer(msg: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``("authn_resp", data)`` for a known, enabled device of an enabled account;
    ``("authn_err", {})`` otherwise."""
    realm, user = identity(msg)
    account = accounts.account_by_realm(realm)
    if account is None:
        log.info("authn_req for %s@%s: unknown realm", user, realm)
        return "authn_err", {}
    if not account.get("enabled", True):
        log.info("authn_req for %s@%s: account %s disabled", user, realm, account["id"])
        return "authn_err", {}
    creds = accounts.credentials(realm, user)
    if creds is None:
        log.info("authn_req for %s@%s: unknown user", user, realm)
        return "authn_err", {}
    if not creds.get("enabled", True):
        log.info("authn_req for %s@%s: device %s disabled", user, realm, creds["authorizing_id"])
        return "authn_err", {}
    sip = creds.get("sip") or {}
    if sip.get("password"):
        method, secret = "password", sip["password"]
    elif sip.get("a1_hash"):
        method, secret = "a1-hash", sip["a1_hash"]
    else:
        log.warning("authn_req for %s@%s: device %s has no password nor a1-hash", user, realm,
                    creds["authorizing_id"])
        return "authn_err", {}
    ccvs = {
        "Username": user,
        "Realm": realm,
        "Account-ID": creds.get("account_id") or account["id"],
        "Authorizing-ID": creds["authorizing_id"],
        "Authorizing-Type": "device",
        "Inception": "on-net",
        "Account-Name": account.get("name", ""),
    }
    if creds.get("owner_id"):
        ccvs["Owner-ID"] = creds["owner_id"]
    log.debug("authn_req for %s@%s: %s", user, realm, method)
    return "authn_resp", {"Auth-Method": method, "Auth-Password": secret,
                          "Auth-Username": user, "Custom-Channel-Vars": ccvs,
                          "Account-ID": ccvs["Account-ID"]}
