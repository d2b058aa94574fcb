"""The caller id an operator sets is the caller id the callee sees (issue #15), on a real
FreeSWITCH: SIPp devices register and call, SIPp callees (a phone, a SIP URI, a carrier
behind a gateway) record the INVITE they get, and the tests read its From,
Remote-Party-ID / P-Asserted-Identity and Privacy headers.

- device to device: the configured **internal** id (the phone's own From is gone);
- out through a gateway / to a URI: the **external** id (the account's, under the device);
- ``outbound_privacy`` full: an anonymous From and a Privacy header towards the carrier;
- a ``set_caller_id`` node overrides what is configured, for that call;
- ``lock_external`` without an external id: 403 ``Caller ID Not Allowed``, nothing sent;
- a hostile stored name arrives as inert text in the From, and nothing else changes.
"""

from __future__ import annotations

import re

import pytest

from tests import fskit, phonekit
from whistle_tasks.core.couch import get_couch
from whistle_tasks.data import accounts
from whistle_tasks.ops import callflows as cf_ops
from whistle_tasks.ops import provisioning

pytestmark = pytest.mark.usefixtures("freeswitch")

CALLER, CALLER_PW = "1000", "pw-caller"
INTERNAL = {"name": "Front Desk", "number": "1002"}
EXTERNAL = {"name": "ACME Corp", "number": "+14155550100"}
CARRIER_DID = "+14155550199"


def call(fs: fskit.Platform, realm: str, number: str,
         scenario: str = "uac_call.xml") -> fskit.SippResult:
    return fs.sipp.run(scenario, port=phonekit.udp_port(), service=number, user=CALLER,
                       password=CALLER_PW, variables={"realm": realm, "caller": CALLER},
                       extra=["-d", "1000"], timeout=90)


def invite(result: fskit.SippResult) -> dict[str, list[str]]:
    """The headers of the first INVITE the callee received: ``{lower name: [values]}``."""
    for block in re.split(r"^-+ [\d.: -]+\n", result.messages, flags=re.MULTILINE):
        lines = [line for line in block.splitlines() if line.strip()]
        if len(lines) > 1 and "received" in lines[0] and lines[1].startswith("INVITE "):
            headers: dict[str, list[str]] = {}
            for line in lines[2:]:
                if line.startswith(("v=", "o=", "s=", "c=", "t=", "m=", "a=")):
                    break
                name, _, value = line.partition(":")
                headers.setdefault(name.strip().lower(), []).append(value.strip())
            return headers
    raise AssertionError(f"the callee got no INVITE\n{result.describe()}")


def identity(header: str) -> tuple[str, str]:
    """``(display name, user part)`` of a From / P-Asserted-Identity / Remote-Party-ID."""
    found = re.match(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^<]*?))\s*<sips?:([^@>]*)@', header)
    assert found, header
    return (found.group(1) if found.group(1) is not None else found.group(2)), found.group(3)


def answered_call(fs: fskit.Platform, realm: str, number: str, port: int,
                  user: str) -> dict[str, list[str]]:
    uas = phonekit.sipp_phone(fs, "uas_answer.xml", port, user)
    caller = call(fs, realm, number)
    got = uas.wait(60)
    assert caller.ok and caller.final_status("INVITE") == "200", caller.describe()
    assert got.ok and got.received() == ["INVITE", "ACK", "BYE"], got.describe()
    return invite(got)


def set_account_caller_id(realm: str, **changes: object) -> None:
    provisioning.update_account(realm, changes)


def test_device_to_device_shows_the_internal_id(freeswitch: fskit.Platform,
                                                realm: str) -> None:
    provisioning.create_device(realm, CALLER, password=CALLER_PW, extra={
        "caller_id": {"internal": INTERNAL, "external": EXTERNAL}})
    port = phonekit.register(freeswitch, realm, "1001")
    provisioning.add_number("2001", realm, "device:1001")
    headers = answered_call(freeswitch, realm, "2001", port, "1001")
    assert identity(headers["from"][0]) == ("Front Desk", "1002"), headers
    assert identity(headers["remote-party-id"][0]) == ("Front Desk", "1002"), headers


def test_the_phones_own_from_when_nothing_is_configured(freeswitch: fskit.Platform,
                                                        realm: str) -> None:
    provisioning.create_device(realm, CALLER, password=CALLER_PW)
    port = phonekit.register(freeswitch, realm, "1001")
    provisioning.add_number("2001", realm, "device:1001")
    headers = answered_call(freeswitch, realm, "2001", port, "1001")
    assert identity(headers["from"][0]) == (CALLER, CALLER), headers


def test_a_gateway_call_shows_the_external_id(freeswitch: fskit.Platform, realm: str) -> None:
    """The device sets the internal id, the account the external one: the carrier sees the
    account's (device > owner > account, per kind)."""
    set_account_caller_id(realm, caller_id={"external": EXTERNAL})
    provisioning.create_device(realm, CALLER, password=CALLER_PW,
                               extra={"caller_id": {"internal": INTERNAL}})
    port = phonekit.udp_port()
    provisioning.add_number(CARRIER_DID, realm, f"gateway:127.0.0.1:{port}")
    headers = answered_call(freeswitch, realm, CARRIER_DID, port, CARRIER_DID)
    assert identity(headers["from"][0]) == ("ACME Corp", "+14155550100"), headers
    assert identity(headers["remote-party-id"][0]) == ("ACME Corp", "+14155550100"), headers


def test_a_uri_call_shows_the_external_id(freeswitch: fskit.Platform, realm: str) -> None:
    provisioning.create_device(realm, CALLER, password=CALLER_PW, extra={
        "caller_id": {"internal": INTERNAL, "external": {"name": "Desk Out",
                                                         "number": "+14155550111"}}})
    port = phonekit.udp_port()
    provisioning.add_number("7000", realm, f"uri:sip:7000@127.0.0.1:{port}")
    headers = answered_call(freeswitch, realm, "7000", port, "7000")
    assert identity(headers["from"][0]) == ("Desk Out", "+14155550111"), headers


def test_full_privacy_hides_the_id_from_the_carrier(freeswitch: fskit.Platform,
                                                    realm: str) -> None:
    provisioning.create_device(realm, CALLER, password=CALLER_PW, extra={
        "caller_id": {"internal": INTERNAL, "external": EXTERNAL},
        "caller_id_options": {"outbound_privacy": "full"}})
    port = phonekit.udp_port()
    provisioning.add_number(CARRIER_DID, realm, f"gateway:127.0.0.1:{port}")
    headers = answered_call(freeswitch, realm, CARRIER_DID, port, CARRIER_DID)
    name, number = identity(headers["from"][0])
    assert "ACME" not in name and "4155550100" not in number, headers
    assert name.lower() == "anonymous" and number.lower() == "anonymous", headers
    assert any("id" in value for value in headers.get("privacy", [])), headers
    # the carrier still gets the true identity, to use under the Privacy header
    assert identity(headers["p-asserted-identity"][0])[1] == "+14155550100", headers


def test_set_caller_id_overrides_for_the_call(freeswitch: fskit.Platform, realm: str) -> None:
    provisioning.create_device(realm, CALLER, password=CALLER_PW,
                               extra={"caller_id": {"internal": INTERNAL}})
    port = phonekit.register(freeswitch, realm, "1001")
    cf_ops.save(realm, {"numbers": ["3000"], "flow": {
        "module": "set_caller_id", "data": {"internal": {"name": "Sales Line",
                                                         "number": "3000"}},
        "children": {"_": {"module": "device", "data": {"username": "1001"}}}}})
    headers = answered_call(freeswitch, realm, "3000", port, "1001")
    assert identity(headers["from"][0]) == ("Sales Line", "3000"), headers


def test_lock_external_without_an_external_id_is_refused(freeswitch: fskit.Platform,
                                                         realm: str) -> None:
    provisioning.create_device(realm, CALLER, password=CALLER_PW, extra={
        "caller_id": {"internal": INTERNAL}, "caller_id_options": {"lock_external": True}})
    port = phonekit.udp_port()
    provisioning.add_number(CARRIER_DID, realm, f"gateway:127.0.0.1:{port}")
    caller = call(freeswitch, realm, CARRIER_DID, "uac_fail.xml")
    assert caller.final_status("INVITE") == "403", caller.describe()
    assert "Caller ID Not Allowed" in caller.messages, caller.describe()


def test_a_hostile_stored_name_arrives_as_inert_text(freeswitch: fskit.Platform,
                                                     realm: str) -> None:
    """Stored behind validation's back (an old import, a hand edit): quotes, an XML end,
    a variable, CR/LF and a header of its own."""
    hostile = 'Evil" <sip:x@y>, "/>${system(id)}\r\nX-Injected: 1'
    provisioning.create_device(realm, CALLER, password=CALLER_PW)
    device = provisioning.get_device(realm, CALLER)
    couch = get_couch()
    for db in (device["pvt_account_db"], "sip_auth"):
        couch.update(db, device["_id"], lambda cur: {
            **cur, "caller_id": {"name": hostile, "number": "1002"}})
    accounts.forget_credentials(realm, CALLER, shared=True)
    port = phonekit.register(freeswitch, realm, "1001")
    provisioning.add_number("2001", realm, "device:1001")
    headers = answered_call(freeswitch, realm, "2001", port, "1001")
    assert "x-injected" not in headers, headers
    assert len(headers["from"]) == 1, headers
    name, number = identity(headers["from"][0])
    assert number == "1002", headers
    # the quotes and the line break are gone; the rest is the text as stored
    assert name == "Evil <sip:x@y>, />${system(id)}X-Injected: 1", headers


def test_lock_external_in_a_callflow_is_refused(freeswitch: fskit.Platform, realm: str) -> None:
    """The same refusal from the callflow whapp: a set_caller_id node locks the call, and
    the forward after it has no external id to present."""
    provisioning.create_device(realm, CALLER, password=CALLER_PW,
                               extra={"caller_id": {"internal": INTERNAL}})
    port = phonekit.udp_port()
    cf_ops.save(realm, {"numbers": ["4000"], "flow": {
        "module": "set_caller_id", "data": {"lock_external": True},
        "children": {"_": {"module": "forward", "data": {
            "gateway": f"127.0.0.1:{port}", "number": CARRIER_DID}}}}})
    caller = call(freeswitch, realm, "4000", "uac_fail.xml")
    assert caller.final_status("INVITE") == "403", caller.describe()
    assert "Caller ID Not Allowed" in caller.messages, caller.describe()
