"""Caller id (issue #15) below the switch: the values an operator may set
(schemas/caller_id.py), the one rule that chooses what a leg presents (data/caller_id.py:
set_caller_id > forwarding user > device > owner > account; internal to devices, external
to gateways and URIs; privacy; lock_external), how the bridge writes it for FreeSWITCH
(dialstring.py: display names and numbers escaped, hostile values inert), and setting it
from the CLI and the REST API. On the real switch: tests/test_freeswitch_callerid.py."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from schemas import callflow as cf
from schemas.caller_id import CallerIdError, check, check_options, merge, normalize
from switch_bridge.freeswitch import dialstring
from switch_bridge.freeswitch.dialstring import bridge_target, cid_number, display_name
from tests import apikit, support
from tests.test_dialstring import fs_originate
from whistle_tasks.data import accounts
from whistle_tasks.data import caller_id as rule
from whistle_tasks.ops import provisioning
from whistle_tasks.ops import users as user_ops
from whistle_tasks.ops.provisioning import ProvisioningError
from whistle_tasks.whapps.callflow.context import Context

pytestmark = pytest.mark.usefixtures("clean_services")

WHISTLE = str(support.VENV_BIN / "whistle")
DEVICE_LEG = {"Invite-Format": "username", "To-User": "1001",
              "Route": "sip:1001@192.0.2.1:5060"}
GATEWAY_LEG = {"Invite-Format": "e164", "Route": "sip:+14155550199@203.0.113.5",
               "To-DID": "+14155550199"}
URI_LEG = {"Invite-Format": "route", "Route": "sip:bob@example.net"}


# -- what may be set ----------------------------------------------------------------------

def test_both_kinds_and_the_legacy_flat_one() -> None:
    assert check({"internal": {"name": "Front Desk", "number": "1002"},
                  "external": {"name": "ACME Corp", "number": "+14155550100"}}) == {
        "internal": {"name": "Front Desk", "number": "1002"},
        "external": {"name": "ACME Corp", "number": "+14155550100"}}
    assert check({"name": "Alice", "number": "1000"}) == \
        {"internal": {"name": "Alice", "number": "1000"}}
    assert normalize({"name": "Alice", "external": {"number": "+1415"}}) == \
        {"internal": {"name": "Alice"}, "external": {"number": "+1415"}}


@pytest.mark.parametrize(("value", "path", "words"), [
    ({"internal": {"name": "x" * 36}}, "caller_id.internal.name", "1 to 35 characters"),
    ({"internal": {"name": "Bad\r\nX-Evil: 1"}}, "caller_id.internal.name", "control"),
    ({"external": {"name": 'Say "hi"'}}, "caller_id.external.name", '"'),
    ({"external": {"name": "back\\slash"}}, "caller_id.external.name", "\\"),
    ({"external": {"number": "+1 415"}}, "caller_id.external.number", "A-Z a-z 0-9"),
    ({"internal": {"number": "<sip:x@y>"}}, "caller_id.internal.number", "A-Z a-z 0-9"),
    ({"internal": {"number": "1" * 36}}, "caller_id.internal.number", "1 to 35"),
    ({"emergency": {"number": "911"}}, "caller_id.emergency", "unknown field"),
    ({"internal": {"nmae": "x"}}, "caller_id.internal.nmae", "unknown field"),
    ({"internal": "Alice"}, "caller_id.internal", "expected an object"),
    ("Alice", "caller_id", "expected an object"),
])
def test_refusals_name_the_field(value: Any, path: str, words: str) -> None:  # noqa: ANN401
    with pytest.raises(CallerIdError) as refused:
        check(value)
    assert path in refused.value.errors, refused.value.errors
    assert any(words in reason for reason in refused.value.errors[path])
    assert path in str(refused.value)


def test_options() -> None:
    assert check_options({"outbound_privacy": "full", "lock_external": True}) == \
        {"outbound_privacy": "full", "lock_external": True}
    with pytest.raises(CallerIdError) as refused:
        check_options({"outbound_privacy": "secret", "lock_external": "yes", "x": 1})
    assert set(refused.value.errors) == {"caller_id_options.outbound_privacy",
                                         "caller_id_options.lock_external",
                                         "caller_id_options.x"}


def test_merge_changes_one_field_and_empty_removes() -> None:
    current = {"name": "Alice", "number": "1000"}
    assert merge(current, {"external": {"number": "+14155550100"}}) == {
        "internal": {"name": "Alice", "number": "1000"},
        "external": {"number": "+14155550100"}}
    assert merge(current, {"internal": {"name": ""}}) == {"internal": {"number": "1000"}}


def test_set_caller_id_node_is_checked_with_the_callflow() -> None:
    good = {"numbers": ["3000"], "flow": {"module": "set_caller_id",
                     "data": {"external": {"number": "+14155550100"},
                              "outbound_privacy": "number"},
                     "children": {"_": {"module": "hangup"}}}}
    assert cf.check(good) == {}
    bad = {"numbers": ["3000"], "flow": {"module": "set_caller_id", "data": {
        "internal": {"name": 'a"b'},
                                                        "outbound_privacy": "all"}}}
    errors = cf.check(bad)
    assert any("internal" in path for path in errors), errors
    assert any("outbound_privacy" in path for path in errors), errors
    device = {"numbers": ["3000"], "flow": {"module": "device", "data": {"username": "1001",
                                                    "caller_id": {"number": "not a number"}}}}
    assert any("caller_id" in path for path in cf.check(device)), cf.check(device)
    empty = {"numbers": ["3000"], "flow": {"module": "set_caller_id", "data": {}}}
    assert cf.check(empty), "a set_caller_id that sets nothing is refused"


# -- the rule: which id a leg presents ----------------------------------------------------

@pytest.fixture()
def people(realm: str) -> str:
    """An account with external id, a user with an internal one, and devices: 1000 owned by
    the user (sets nothing), 1001 (sets its internal id), 1002 (owned, locked, no external
    anywhere but the account's... see the tests)."""
    provisioning.update_account(realm, {"caller_id": {
        "internal": {"name": "ACME Main", "number": "1900"},
        "external": {"name": "ACME Corp", "number": "+14155550100"}}})
    user_ops.create_user(realm, "alice", caller_id={"internal": {"name": "Alice",
                                                                 "number": "1100"}})
    provisioning.create_device(realm, "1000", password="pw")
    user_ops.add_device(realm, "alice", "1000")
    provisioning.create_device(realm, "1001", password="pw", extra={
        "caller_id": {"internal": {"number": "1001"}}})
    user_ops.add_device(realm, "alice", "1001")
    provisioning.create_device(realm, "1003", password="pw", extra={
        "caller_id": {"external": {"number": "+14155550103"}},
        "caller_id_options": {"outbound_privacy": "name"}})
    return realm


def legs_for(realm: str, username: str | None, legs: list[dict[str, Any]],
             **how: Any) -> list[dict[str, Any]]:  # noqa: ANN401
    caller = {"Realm": realm, "Username": username} if username else {}
    return rule.for_legs(legs, caller, account=accounts.account_by_realm(realm), **how)


def shown(leg: dict[str, Any]) -> tuple[str | None, str | None]:
    return leg.get("Outgoing-Caller-ID-Name"), leg.get("Outgoing-Caller-ID-Number")


def test_precedence_per_field_and_kind(people: str) -> None:
    # device sets nothing: the owner's internal id; the account's external one
    device, gateway, uri = legs_for(people, "1000", [DEVICE_LEG, GATEWAY_LEG, URI_LEG])
    assert shown(device) == ("Alice", "1100")
    assert shown(gateway) == shown(uri) == ("ACME Corp", "+14155550100")
    # the device's own number wins, the owner's name fills in
    (device,) = legs_for(people, "1001", [DEVICE_LEG])
    assert shown(device) == ("Alice", "1001")
    # a device without an owner: the account's internal id
    (device, gateway) = legs_for(people, "1003", [DEVICE_LEG, GATEWAY_LEG])
    assert shown(device) == ("ACME Main", "1900")
    assert gateway["Outgoing-Caller-ID-Number"] == "+14155550103"
    assert gateway["Privacy-Hide-Name"] is True and "Privacy-Hide-Number" not in gateway
    assert gateway["Caller-ID-Type"] == "pid"
    assert "Privacy-Hide-Name" not in device      # privacy is for calls going out


def test_overrides_and_forwarding(people: str) -> None:
    forwarder = {"caller_id": {"internal": {"name": "Bob", "number": "1200"}}}
    (leg,) = legs_for(people, "1000", [DEVICE_LEG], forwarded_by=forwarder,
                      keep_caller_id=False)
    assert shown(leg) == ("Bob", "1200")
    (leg,) = legs_for(people, "1000", [DEVICE_LEG], forwarded_by=forwarder,
                      keep_caller_id=True)
    assert shown(leg) == ("Alice", "1100")
    # a node's flat caller id is both kinds and beats everything configured
    legs = legs_for(people, "1000", [DEVICE_LEG, GATEWAY_LEG],
                    override={"name": "Sales", "number": "+14155550177"},
                    forwarded_by=forwarder, keep_caller_id=False)
    assert [shown(leg) for leg in legs] == [("Sales", "+14155550177")] * 2


def test_set_caller_id_in_a_callflow_context(people: str) -> None:
    context = Context(account=accounts.account_by_realm(people), call_id="c1",
                      caller={"Realm": people, "Username": "1000"})
    context.caller_id = context.override({"external": {"name": "Support",
                                                       "number": "+14155550188"}})
    device, gateway = context.with_caller_id([DEVICE_LEG, GATEWAY_LEG])
    assert shown(device) == ("Alice", "1100")
    assert shown(gateway) == ("Support", "+14155550188")
    # the bridge node's own caller id is on top of set_caller_id, per field
    (gateway,) = context.with_caller_id([GATEWAY_LEG], {"external": {"name": "Node"}})
    assert shown(gateway) == ("Node", "+14155550188")
    assert context.presented("internal") == {"name": "Alice", "number": "1100"}


def test_calls_from_outside_keep_their_own_id(people: str) -> None:
    (leg,) = legs_for(people, None, [DEVICE_LEG])
    assert shown(leg) == (None, None)


def test_lock_external(realm: str) -> None:
    provisioning.create_device(realm, "2000", password="pw", extra={
        "caller_id": {"internal": {"name": "Desk", "number": "2000"}},
        "caller_id_options": {"lock_external": True}})
    (device,) = legs_for(realm, "2000", [DEVICE_LEG])
    assert shown(device) == ("Desk", "2000")      # inside: fine
    with pytest.raises(rule.Refused):
        legs_for(realm, "2000", [GATEWAY_LEG])
    # without the lock the internal id would have left; with an external id it leaves
    provisioning.create_device(realm, "2001", password="pw", extra={
        "caller_id": {"internal": {"name": "Desk", "number": "2001"}}})
    assert shown(legs_for(realm, "2001", [GATEWAY_LEG])[0]) == ("Desk", "2001")
    provisioning.create_device(realm, "2002", password="pw", extra={
        "caller_id": {"internal": {"name": "Desk", "number": "2002"},
                      "external": {"number": "+14155550102"}},
        "caller_id_options": {"lock_external": True}})
    assert shown(legs_for(realm, "2002", [GATEWAY_LEG])[0]) == (None, "+14155550102")


# -- the wire: route fields -> FreeSWITCH dial string -------------------------------------

def test_fields_become_channel_variables() -> None:
    got = dialstring.leg_vars({"Outgoing-Caller-ID-Name": "Front Desk",
                               "Outgoing-Caller-ID-Number": "+14155550100",
                               "Privacy-Hide-Name": True, "Privacy-Hide-Number": True,
                               "Caller-ID-Type": "pid"})
    assert got == {"origination_caller_id_name": "Front Desk",
                   "origination_caller_id_number": "+14155550100", "sip_cid_type": "pid",
                   "origination_privacy": "screen+hide_name+hide_number",
                   "sip_from_display": "Anonymous",
                   "sip_invite_from_uri": "sip:anonymous@anonymous.invalid"}
    assert dialstring.leg_vars({"Caller-ID-Type": "from"}) == {"sip_cid_type": "none"}
    with pytest.raises(ValueError, match="Caller-ID-Type"):
        dialstring.leg_vars({"Caller-ID-Type": "whatever"})


@pytest.mark.parametrize(("name", "sent"), [
    ("Front Desk", "Front Desk"),
    ('Evil" <sip:x@y>', "Evil <sip%3Ax%40y>"),
    ("a\\b", "a\\\\b"),
    ("CR\r\nX-Evil: 1", "CRX-Evil%3A 1"),
    ("50% off / now", "50%25 off %2F now"),
    ("${system(id)}, {x}", "${system(id)}, {x}"),
])
def test_display_names(name: str, sent: str) -> None:
    assert display_name(name) == sent


@pytest.mark.parametrize(("number", "sent"), [
    ("+14155550100", "+14155550100"),
    ("*67#", "*67%23"),
    ("1000@evil>", "1000%40evil%3E"),
    ("${x},[y]", "%24%7Bx%7D%2C%5By%5D"),
    ("é", "%C3%A9"),
])
def test_numbers(number: str, sent: str) -> None:
    assert cid_number(number) == sent


@pytest.mark.parametrize("hostile", [
    'Evil" <sip:x@y>, "/>', "${system(id)}", "a,b|c]d[e{f}g", "x:_:y",
    "origination_nested_vars=true", "'quoted' \\' end\\", "<action application='x'/>",
])
def test_hostile_values_stay_one_leg_and_one_variable(hostile: str) -> None:
    """Whatever a stored caller id holds, the dial string keeps its shape: one leg, the
    same variables, the value as text."""
    route = {**URI_LEG, "Outgoing-Caller-ID-Name": hostile,
             "Outgoing-Caller-ID-Number": hostile}
    parsed = fs_originate(bridge_target([route], "single", profile="internal",
                                        global_vars={}))
    assert not parsed["nested"]
    [[leg]] = parsed["groups"]
    assert leg["data"] == "internal/sip:bob@example.net"
    assert set(leg["vars"]) <= {"origination_caller_id_name", "origination_caller_id_number"}
    assert leg["vars"]["origination_caller_id_number"] == cid_number(hostile)
    if "origination_caller_id_name" in leg["vars"]:
        shown_name = leg["vars"]["origination_caller_id_name"]
        assert '"' not in shown_name and "\r" not in shown_name


# -- setting it: ops, CLI, API ------------------------------------------------------------

def test_ops_refuse_bad_values_naming_the_field(realm: str) -> None:
    before = provisioning.STATS["refused_caller_id"]
    with pytest.raises(ProvisioningError, match="caller_id.external.number"):
        provisioning.create_device(realm, "3000", password="pw", extra={
            "caller_id": {"external": {"number": "not a number"}}})
    with pytest.raises(ProvisioningError, match="caller_id_options.outbound_privacy"):
        provisioning.update_account(realm, {"caller_id_options": {"outbound_privacy": "x"}})
    with pytest.raises(ProvisioningError, match="caller_id.internal.name"):
        user_ops.create_user(realm, "carol", caller_id={"internal": {"name": "x" * 40}})
    assert provisioning.STATS["refused_caller_id"] == before + 3


def whistle(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([WHISTLE, *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ), cwd=support.ROOT, check=False)


def test_cli(realm: str) -> None:
    made = whistle("device", "create", "--realm", realm, "--username", "1002",
                   "--password", "pw", "--caller-id-name", "Front Desk",
                   "--caller-id-number", "1002", "--external-number", "+14155550100")
    assert made.returncode == 0, made.stderr
    assert provisioning.get_device(realm, "1002")["caller_id"] == {
        "internal": {"name": "Front Desk", "number": "1002"},
        "external": {"number": "+14155550100"}}
    changed = whistle("device", "update", "--realm", realm, "--username", "1002",
                      "--external-name", "ACME Corp", "--internal-name", "",
                      "--outbound-privacy", "number", "--lock-external")
    assert changed.returncode == 0, changed.stderr
    doc = provisioning.get_device(realm, "1002")
    assert doc["caller_id"] == {"internal": {"number": "1002"},
                                "external": {"name": "ACME Corp", "number": "+14155550100"}}
    assert doc["caller_id_options"] == {"outbound_privacy": "number", "lock_external": True}
    listed = whistle("device", "list", "--realm", realm)
    assert listed.returncode == 0, listed.stderr
    assert "CALLER ID" in listed.stdout
    row = next(line for line in listed.stdout.splitlines() if " 1002 " in f" {line} ")
    assert "ext: ACME Corp <+14155550100>" in row and "locked" in row, listed.stdout

    acct = whistle("account", "update", "--realm", realm, "--external-name", "ACME",
                   "--external-number", "+14155550000")
    assert acct.returncode == 0, acct.stderr
    assert provisioning.get_account(realm)["caller_id"] == {
        "external": {"name": "ACME", "number": "+14155550000"}}

    user = whistle("user", "create", "alice", "--realm", realm, "--internal-name", "Alice",
                   "--internal-number", "1100")
    assert user.returncode == 0, user.stderr
    user = whistle("user", "set", "alice", "--realm", realm, "--external-number",
                   "+14155550111", "--no-lock-external")
    assert user.returncode == 0, user.stderr
    doc = user_ops.get_user(realm, "alice")
    assert doc["caller_id"] == {"internal": {"name": "Alice", "number": "1100"},
                                "external": {"number": "+14155550111"}}
    assert doc["caller_id_options"] == {"lock_external": False}

    bad = whistle("device", "update", "--realm", realm, "--username", "1002",
                  "--external-name", 'Evil "quote"')
    assert bad.returncode != 0
    assert "caller_id.external.name" in bad.stderr + bad.stdout
    assert "Traceback" not in bad.stderr


@pytest.fixture(scope="module")
def api(clean_services: None) -> Iterator[str]:
    proc, base = apikit.start_api("api-callerid")
    yield base
    proc.stop()
    assert "Traceback" not in proc.output(), proc.output()[-3000:]


def test_api(api: str) -> None:
    """In a tenant of its own (other API tests count devices and accounts)."""
    who = apikit.tenant("cid")
    base = f"{api}/v1/accounts/{who.id}"
    made = requests.post(f"{base}/devices", headers=who.headers, timeout=30, json={
        "username": "1002", "password": "pw",
        "caller_id": {"internal": {"name": "Front Desk", "number": "1002"}},
        "caller_id_options": {"outbound_privacy": "full"}})
    assert made.status_code == 201, made.text
    device = made.json()
    assert device["caller_id"] == {"internal": {"name": "Front Desk", "number": "1002"}}
    assert device["caller_id_options"] == {"outbound_privacy": "full"}
    patched = requests.patch(f"{base}/devices/{device['id']}", headers=who.headers,
                             timeout=30, json={"caller_id": {"external": {
                                 "number": "+14155550100"}}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["caller_id"] == {"internal": {"name": "Front Desk",
                                                        "number": "1002"},
                                           "external": {"number": "+14155550100"}}
    bad = requests.patch(f"{base}/devices/{device['id']}", headers=who.headers, timeout=30,
                         json={"caller_id": {"external": {"name": 'a"b'}}})
    assert bad.status_code == 422, bad.text
    assert "external.name" in bad.text

    # an account's caller id, without having to say `enabled`
    acct = requests.patch(base, headers=who.headers, timeout=30, json={
        "caller_id": {"external": {"name": "ACME Corp", "number": "+14155550100"}},
        "caller_id_options": {"lock_external": True}})
    assert acct.status_code == 200, acct.text
    assert acct.json()["enabled"] is True
    assert acct.json()["caller_id"] == {"external": {"name": "ACME Corp",
                                                     "number": "+14155550100"}}
    assert acct.json()["caller_id_options"] == {"lock_external": True}
    bad = requests.patch(base, headers=who.headers, timeout=30,
                         json={"caller_id_options": {"outbound_privacy": "everything"}})
    assert bad.status_code == 422, bad.text
    assert "outbound_privacy" in bad.text
    empty = requests.patch(base, headers=who.headers, timeout=30, json={})
    assert empty.status_code == 422, empty.text
