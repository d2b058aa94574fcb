"""Two bridges on one real FreeSWITCH (switch_bridge/redundancy.py): the active one is
SIGKILLed while a caller is in the auto-attendant, and the call carries on through the
other.

The instance's mod_xml_curl lists both bridges (the shipped snippet's second pair of
bindings, uncommented as deploy/README.md says); both bridges hold a lease on the node
(``WHISTLE_BRIDGE_LEASE_MS=2000``). A SIPp caller dials the attendant (5000); once the
attendant collects digits, the active bridge is killed. The standby takes over: it
republishes what the dead one may not have, learns what the node holds (the caller's
channel carries its control queue) and controls the call again with the same queue. The
caller's digits (SIP INFO, sent after the takeover) reach the attendant, which bridges the
call to extension 1012. A phone that registers during the takeover is known afterwards
(its REGISTER's directory lookup falls over to the second binding)."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator

import pytest

from tests import faultkit, fskit, support
from tests.bridgekit import EventSink
from whistle_tasks.data import registrations
from whistle_tasks.ops import provisioning


@pytest.fixture(scope="module")
def pair(whapp_worker: support.Process,
         request: pytest.FixtureRequest) -> Iterator[fskit.Platform]:
    reason = fskit.missing()
    if reason:
        pytest.skip(reason)
    failed = request.session.testsfailed
    platform = fskit.Platform("fs-ha", bridges=2).start()
    yield platform
    platform.stop(keep_log=request.session.testsfailed > failed)


@pytest.fixture()
def sink() -> Iterator[EventSink]:
    s = EventSink()
    yield s
    s.close()


def udp_port() -> int:
    return fskit.free_port((socket.SOCK_DGRAM,))


def role(port: int) -> str:
    for line in fskit.bridge_health(port).splitlines():
        words = line.split()
        if words[:1] == ["node"] and len(words) == 4:
            return words[3]
    return ""


def test_call_in_the_attendant_survives_the_active_bridge_killed(
        pair: fskit.Platform, realm: str, sink: EventSink) -> None:
    for user in ("1000", "1012", "1013"):
        provisioning.create_device(realm, user, password=f"pw-{user}")
    provisioning.add_number("5000", realm, "app:attendant")
    support.wait_until(lambda: sorted(role(p) for p in pair.http_ports)
                       == ["active", "standby"], timeout=30, what="an active and a standby")
    callee_port = udp_port()
    registered = pair.sipp.run("register.xml", port=callee_port, service="1012", user="1012",
                               password="pw-1012", variables={"realm": realm, "expires": 3600})
    assert registered.ok, registered.describe()
    support.wait_until(lambda: registrations.lookup(realm, "1012"), timeout=20,
                       what="1012 registered")
    callee = pair.sipp.start("uas_answer.xml", port=callee_port, service="1012", timeout=90)
    support.wait_until(lambda: callee.listening(callee_port), timeout=10, what="callee SIPp")
    caller = pair.sipp.start("uac_dtmf_info.xml", server=False, port=udp_port(),
                             service="5000", user="1000", password="pw-1000",
                             variables={"realm": realm, "caller": "1000"},
                             extra=["-d", "1500"], timeout=90)
    index = {p: i for i, p in enumerate(pair.http_ports)}
    try:
        def collecting() -> dict | None:
            sink.drain(len(sink.messages) + 1, timeout=0.3)
            return next((m for m in sink.messages
                         if m.get("Event-Name") == "CHANNEL_EXECUTE"
                         and m.get("Application-Name") == "play_and_collect_digits"
                         and (m.get("Custom-Channel-Vars") or {}).get("Realm") == realm), None)

        call_id = support.wait_until(collecting, timeout=30,
                                     what="the attendant to collect digits")["Call-ID"]
        active = next(p for p in pair.http_ports if role(p) == "active")
        standby = next(p for p in pair.http_ports if p != active)
        old, new = pair.bridges[index[active]], pair.bridges[index[standby]]
        old.kill(signal.SIGKILL)
        killed_at = time.monotonic()
        # a phone registers while the standby takes over: FreeSWITCH's lookup finds the
        # first bridge dead and asks the second
        during = pair.sipp.run("register.xml", port=udp_port(), service="1013", user="1013",
                               password="pw-1013", variables={"realm": realm,
                                                              "expires": 3600})
        support.wait_until(lambda: role(standby) == "active", timeout=30,
                           what="the standby to take over")
        taken_s = time.monotonic() - killed_at
        support.wait_until(lambda: "1 calls controlled again" in new.output(), timeout=30,
                           what="the new active to control the call again")
        sent = pair.fs.cli(f"uuid_send_info {call_id} text plain collecting")
        assert "+OK" in sent, sent
        result = caller.wait(60)
        answered = callee.wait(30)
    finally:
        caller.stop()
        callee.stop()
    assert during.ok, during.describe()
    assert result.ok, result.describe()
    assert result.final_status("INVITE") == "200", result.describe()
    assert answered.ok, answered.describe()
    assert answered.received() == ["INVITE", "ACK", "BYE"], answered.describe()
    support.wait_until(lambda: registrations.lookup(realm, "1013"), timeout=30,
                       what="1013, registered during the takeover, known")
    events = [m for m in sink.settle(1.0) if m.get("Call-ID") == call_id]
    digits = [m.get("Application-Response") for m in events
              if m.get("Event-Name") == "CHANNEL_EXECUTE_COMPLETE"
              and m.get("Application-Name") == "play_and_collect_digits"]
    assert digits[:1] == ["1012"], digits
    names = [m.get("Event-Name") for m in events]
    assert "CHANNEL_BRIDGE" in names and "CHANNEL_HANGUP_COMPLETE" in names, names
    faultkit.figures("takeover_freeswitch_attendant", seconds_to_active=round(taken_s, 2),
                     call_events=len(events), registered_during_takeover=during.ok)
