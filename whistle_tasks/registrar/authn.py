"""Who may register: the answer to an ``authn_req`` (no FreeSWITCH knowledge here)."""

from __future__ import annotations

import ipaddress
from typing import Any

from whistle_tasks import accounts
from whistle_tasks.util.log import get_logger

log = get_logger(__name__)


def _user_part(uri: str) -> str:
    """``sip:1000@example.com`` / ``<sip:1000@x>`` / ``1000@x`` → ``1000``."""
    uri = uri.strip().strip("<>")
    if ":" in uri.split("@", 1)[0]:
        uri = uri.split(":", 1)[1]
    return uri.split("@", 1)[0]


def _host_part(uri: str) -> str:
    """``sip:1000@example.com:5060;transport=udp`` → ``example.com`` (``[v6]`` kept whole)."""
    host = uri.strip().strip("<>").split("@", 1)[-1].split(";", 1)[0].split(">", 1)[0]
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.split(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return True


def realm_and_user(msg: dict[str, Any]) -> tuple[str, str]:
    """docs/api.md: lower-case both; user ``unknown`` → user of ``To``; IP realm → domain of
    ``To``."""
    realm = str(msg["Auth-Realm"]).lower()
    user = str(msg["Auth-User"]).lower()
    if user == "unknown":
        user = _user_part(str(msg["To"])).lower()
    if _is_ip(realm):
        to_host = _host_part(str(msg["To"])).lower()
        if to_host and not _is_ip(to_host):
            realm = to_host
    return realm, user


def answer(msg: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``("authn_resp", data)`` for a known, enabled device of an enabled account;
    ``("authn_err", {})`` otherwise."""
    realm, user = realm_and_user(msg)
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
