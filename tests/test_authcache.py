"""The bridge's credential cache: hits, refusals, expiry, and changes that drop entries
(including entries stored under an IP realm for a device of a named realm)."""

from __future__ import annotations

import time

from switch_bridge.authcache import AuthCache


def answer(realm: str, user: str, password: str = "pw") -> dict:
    return {"Event-Name": "authn_resp", "Auth-Method": "password", "Auth-Password": password,
            "Custom-Channel-Vars": {"Realm": realm, "Username": user}}


def test_hit_miss_refusal_and_expiry() -> None:
    cache = AuthCache(ttl=0.2)
    assert cache.get("a.com", "1000") == (False, None)
    cache.put("A.com", "1000", answer("a.com", "1000"), b"<pw/>")
    found, got = cache.get("a.com", "1000")
    assert found and got == b"<pw/>"
    cache.put("a.com", "nobody", None)
    assert cache.get("a.com", "nobody") == (True, None)
    time.sleep(0.25)
    assert cache.get("a.com", "1000") == (False, None)
    assert cache.stats["hits"] == 1 and cache.stats["negative_hits"] == 1


def test_rendered_xml_follows_its_entry() -> None:
    cache = AuthCache(ttl=60)
    cache.put("a.com", "1000", answer("a.com", "1000"), b"<x/>")
    assert cache.get("a.com", "1000") == (True, b"<x/>")
    cache.put("a.com", "1000", answer("a.com", "1000", "new"), b"<new/>")
    assert cache.get("a.com", "1000") == (True, b"<new/>")   # a new answer, its own render


def test_device_change_drops_every_alias_and_refusal() -> None:
    cache = AuthCache(ttl=60)
    cache.put("192.0.2.1", "1000", answer("a.com", "1000"))   # phone used the IP as realm
    cache.put("a.com", "1000", answer("a.com", "1000"), b"<x/>")
    cache.put("a.com", "1001", answer("a.com", "1001"))
    cache.put("b.com", "1000", None)
    cache.on_change({"Type": "device", "Realm": "a.com", "Username": "1000"})
    assert cache.get("192.0.2.1", "1000") == (False, None)
    assert cache.get("a.com", "1000") == (False, None)
    assert cache.get("a.com", "1001")[0]
    assert cache.get("b.com", "1000") == (False, None)   # a refusal of that user: forgotten


def test_account_change_drops_the_realm() -> None:
    cache = AuthCache(ttl=60)
    cache.put("a.com", "1000", answer("a.com", "1000"))
    cache.put("b.com", "1000", answer("b.com", "1000"))
    cache.on_change({"Type": "account", "Realm": "a.com"})
    assert cache.get("a.com", "1000") == (False, None)
    assert cache.get("b.com", "1000")[0]
    cache.on_change({"Type": "number", "Realm": "b.com"})   # not about credentials
    assert cache.get("b.com", "1000")[0]
    cache.on_change({"Type": "device", "ID": "*"})          # bulk import: everything goes
    assert cache.get("b.com", "1000") == (False, None)
