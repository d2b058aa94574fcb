"""Calls through a real FreeSWITCH (configured from deploy/freeswitch/) routed by Whistle:
SIPp devices register and call, the router answers the dialplan lookup, FreeSWITCH bridges.

What SIP carried is asserted from both SIPp ends (exit code, responses and requests in the
message logs); what Whistle saw from the ``callevt`` exchange. Failed calls must reach the
caller with the SIP code of the real outcome (Whistle's own 404/480, or the callee's 486,
480, 404, 603, and 487 for a cancelled call).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests import fskit, support
from tests.bridgekit import EventSink
from whistle_tasks.data import registrations
from whistle_tasks.ops import provisioning

pytestmark = pytest.mark.usefixtures("freeswitch")

CALLER, CALLER_PW = "1000", "pw-caller"


def udp_port() -> int:
    return fskit.free_port((socket.SOCK_DGRAM,))


@pytest.fixture()
def account(realm: str) -> str:
    """A realm with the calling device 1000."""
    provisioning.create_device(realm, CALLER, password=CALLER_PW)
    return realm


def register_device(fs: fskit.Platform, realm: str, user: str, password: str) -> int:
    """Register ``user`` from a port of its own; returns the port (where its UAS listens)."""
    port = udp_port()
    result = fs.sipp.run("register.xml", port=port, service=user, user=user, password=password,
                         variables={"realm": realm, "expires": 3600})
    assert result.ok, result.describe()
    support.wait_until(lambda: registrations.lookup(realm, user), timeout=20,
                       what=f"{user} registered")
    return port


def callee(fs: fskit.Platform, scenario: str, port: int, user: str,
           **variables: str) -> fskit.Background:
    uas = fs.sipp.start(scenario, port=port, service=user, variables=variables, timeout=60)
    support.wait_until(lambda: uas.listening(port), timeout=10, what="the callee's SIPp")
    return uas


def call(fs: fskit.Platform, realm: str, number: str, scenario: str = "uac_call.xml",
         hold_ms: int = 1000) -> fskit.SippResult:
    return fs.sipp.run(scenario, port=udp_port(), service=number, user=CALLER,
                       password=CALLER_PW, variables={"realm": realm, "caller": CALLER},
                       extra=["-d", str(hold_ms)], timeout=60)


@pytest.fixture()
def sink() -> Iterator[EventSink]:
    s = EventSink()
    yield s
    s.close()


def test_device_to_device_call(freeswitch: fskit.Platform, account: str) -> None:
    realm = account
    provisioning.create_device(realm, "1001", password="pw-1001")
    provisioning.add_number("1001", realm, "device:1001")
    port = register_device(freeswitch, realm, "1001", "pw-1001")
    uas = callee(freeswitch, "uas_answer.xml", port, "1001")
    caller = call(freeswitch, realm, "1001")
    answered = uas.wait()
    assert caller.ok, caller.describe()
    assert caller.received()[:1] == ["407"] and "200" in caller.received(), caller.describe()
    assert caller.final_status("INVITE") == "200"
    assert caller.final_status("BYE") == "200"
    assert answered.ok, answered.describe()
    assert answered.received() == ["INVITE", "ACK", "BYE"], answered.describe()


def test_number_to_a_uri(freeswitch: fskit.Platform, account: str) -> None:
    realm = account
    port = udp_port()
    provisioning.add_number("7000", realm, f"uri:sip:7000@127.0.0.1:{port}")
    uas = callee(freeswitch, "uas_answer.xml", port, "7000")
    caller = call(freeswitch, realm, "7000")
    answered = uas.wait()
    assert caller.ok, caller.describe()
    assert caller.final_status("INVITE") == "200", caller.describe()
    assert answered.ok, answered.describe()
    assert answered.received() == ["INVITE", "ACK", "BYE"], answered.describe()
    assert "INVITE sip:7000@127.0.0.1" in answered.messages


def test_call_events_arrive_in_order(freeswitch: fskit.Platform, account: str,
                                     sink: EventSink) -> None:
    realm = account
    provisioning.create_device(realm, "1001", password="pw-1001")
    provisioning.add_number("1001", realm, "device:1001")
    port = register_device(freeswitch, realm, "1001", "pw-1001")
    uas = callee(freeswitch, "uas_answer.xml", port, "1001")
    caller = call(freeswitch, realm, "1001")
    assert caller.ok and uas.wait().ok, caller.describe()

    def caller_leg() -> list[dict]:
        sink.drain(len(sink.messages) + 1, timeout=0.5)
        # the caller's leg: inbound, authenticated in this test's realm
        ids = {m["Call-ID"] for m in sink.messages if m.get("Call-Direction") == "inbound"
               and (m.get("Custom-Channel-Vars") or {}).get("Realm") == realm}
        if len(ids) != 1:
            return []
        call_id = ids.pop()
        events = [m for m in sink.messages if m.get("Call-ID") == call_id]
        return events if events[-1:] and any(
            e["Event-Name"] == "CHANNEL_HANGUP_COMPLETE" for e in events) else []

    events = support.wait_until(caller_leg, timeout=30, what="the caller leg's events")
    names = [e["Event-Name"] for e in events]
    for name in ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_HANGUP",
                 "CHANNEL_HANGUP_COMPLETE"):
        assert name in names, names
    order = [names.index(n) for n in ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_HANGUP",
                                      "CHANNEL_HANGUP_COMPLETE")]
    assert order == sorted(order), names
    assert names[0] == "CHANNEL_CREATE", names
    hangup = events[names.index("CHANNEL_HANGUP_COMPLETE")]
    assert hangup["Hangup-Cause"] == "NORMAL_CLEARING", hangup
    assert events[0]["Call-Direction"] == "inbound"
    bridged = events[names.index("CHANNEL_BRIDGE")]
    assert bridged.get("Other-Leg-Call-ID"), bridged


def test_unassigned_number_is_404(freeswitch: fskit.Platform, account: str) -> None:
    caller = call(freeswitch, account, "9999", "uac_fail.xml")
    assert caller.ok, caller.describe()
    assert caller.final_status("INVITE") == "404", caller.describe()


def test_unregistered_device_is_480(freeswitch: fskit.Platform, account: str) -> None:
    provisioning.create_device(account, "1001", password="pw-1001")
    provisioning.add_number("1001", account, "device:1001")
    caller = call(freeswitch, account, "1001", "uac_fail.xml")
    assert caller.ok, caller.describe()
    assert caller.final_status("INVITE") == "480", caller.describe()


@pytest.mark.parametrize(("code", "reason"), [("486", "Busy Here"),
                                              ("480", "Temporarily Unavailable"),
                                              ("404", "Not Found"), ("603", "Decline")])
def test_callee_refusal_reaches_the_caller(freeswitch: fskit.Platform, account: str,
                                           code: str, reason: str) -> None:
    realm = account
    provisioning.create_device(realm, "1001", password="pw-1001")
    provisioning.add_number("1001", realm, "device:1001")
    port = register_device(freeswitch, realm, "1001", "pw-1001")
    uas = callee(freeswitch, freeswitch.sipp.refusal(int(code), reason), port, "1001")
    log_from = len(freeswitch.fs.log_text())
    caller = call(freeswitch, realm, "1001", "uac_fail.xml")
    refused = uas.wait()
    # FreeSWITCH writes its log from a thread of its own: wait for the caller leg's end
    log = support.wait_until(
        lambda: (text := freeswitch.fs.log_text()[log_from:]) and "Originate Failed" in text
        and " hangup(" in text and text, timeout=10, what="the failed bridge in the log")
    # the rendered dialplan hangs up with the originate's disposition (render.BRIDGE_FAILED);
    # the old "respond ${bridge_hangup_cause}" responded nothing ("Cannot respond")
    assert "Cannot respond" not in log
    assert refused.ok, refused.describe()
    assert refused.received() == ["INVITE", "ACK"], refused.describe()
    assert caller.ok, caller.describe()
    assert caller.final_status("INVITE") == code, caller.describe()


def test_cancelled_call_is_487(freeswitch: fskit.Platform, account: str) -> None:
    realm = account
    provisioning.create_device(realm, "1001", password="pw-1001")
    provisioning.add_number("1001", realm, "device:1001")
    port = register_device(freeswitch, realm, "1001", "pw-1001")
    uas = callee(freeswitch, "uas_ring_cancel.xml", port, "1001")
    caller = call(freeswitch, realm, "1001", "uac_cancel.xml")
    ringing = uas.wait()
    assert caller.ok, caller.describe()
    assert caller.final_status("INVITE") == "487", caller.describe()
    assert caller.final_status("CANCEL") == "200", caller.describe()
    assert ringing.ok, ringing.describe()
    assert ringing.received() == ["INVITE", "CANCEL", "ACK"], ringing.describe()
