"""The shipped auto-attendant on a real FreeSWITCH: a SIPp caller dials its number, the
router parks the call, the call-control worker answers, plays the greeting and collects an
extension keyed by the caller (1012, as RFC 2833 events or as SIP INFO) and bridges the call to
that extension's registered SIPp.

FreeSWITCH has no sound files here: the platform writes the attendant's prompts (short
tones) under the instance's ``sound_prefix``. The caller sends its digits once the
attendant listens for them: the test sees the ``play_and_collect_digits`` command start on
``callevt`` and sends the caller an INFO through FreeSWITCH (``uuid_send_info``), which
the scenario waits for.
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


def udp_port() -> int:
    return fskit.free_port((socket.SOCK_DGRAM,))


@pytest.fixture()
def sink() -> Iterator[EventSink]:
    s = EventSink()
    yield s
    s.close()


def caller_event(sink: EventSink, realm: str, event_name: str,
                 application: str | None = None) -> dict | None:
    sink.drain(len(sink.messages) + 1, timeout=0.3)
    for msg in sink.messages:
        if (msg.get("Event-Name") == event_name and msg.get("Call-Direction") == "inbound"
                and (msg.get("Custom-Channel-Vars") or {}).get("Realm") == realm
                and (application is None or msg.get("Application-Name") == application)):
            return msg
    return None


@pytest.mark.parametrize("scenario", ["uac_dtmf_2833.xml", "uac_dtmf_info.xml"])
def test_attendant_collects_digits_and_bridges(freeswitch: fskit.Platform, realm: str,
                                               sink: EventSink, scenario: str) -> None:
    if scenario == "uac_dtmf_2833.xml" and not fskit.copy_dtmf_pcaps(freeswitch.sipp.dir):
        pytest.skip(f"SIPp's DTMF captures are not in {fskit.DTMF_PCAPS}")
    provisioning.create_device(realm, "1000", password="pw-1000")
    provisioning.create_device(realm, "1012", password="pw-1012")
    provisioning.add_number("5000", realm, "app:attendant")
    callee_port = udp_port()
    registered = freeswitch.sipp.run("register.xml", port=callee_port, service="1012",
                                     user="1012", password="pw-1012",
                                     variables={"realm": realm, "expires": 3600})
    assert registered.ok, registered.describe()
    support.wait_until(lambda: registrations.lookup(realm, "1012"), timeout=20,
                       what="1012 registered")
    callee = freeswitch.sipp.start("uas_answer.xml", port=callee_port, service="1012",
                                   timeout=60)
    support.wait_until(lambda: callee.listening(callee_port), timeout=10, what="callee SIPp")
    caller = freeswitch.sipp.start(scenario, server=False, port=udp_port(), service="5000",
                                   user="1000", password="pw-1000",
                                   variables={"realm": realm, "caller": "1000"},
                                   extra=["-d", "1500"], timeout=60)
    try:
        collecting = support.wait_until(
            lambda: caller_event(sink, realm, "CHANNEL_EXECUTE", "play_and_collect_digits"),
            timeout=30, what="the attendant to collect digits")
        call_id = collecting["Call-ID"]
        sent = freeswitch.fs.cli(f"uuid_send_info {call_id} text plain collecting")
        assert "+OK" in sent, sent
        result = caller.wait(60)
        answered = callee.wait(30)
    finally:
        caller.stop()
        callee.stop()
    assert result.ok, result.describe()
    assert result.final_status("INVITE") == "200", result.describe()
    assert "INFO" in result.received(), result.describe()
    assert answered.ok, answered.describe()
    assert answered.received() == ["INVITE", "ACK", "BYE"], answered.describe()
    events = [m for m in sink.settle(1.0) if m.get("Call-ID") == call_id]
    digits = [m.get("Application-Response") for m in events
              if m.get("Event-Name") == "CHANNEL_EXECUTE_COMPLETE"
              and m.get("Application-Name") == "play_and_collect_digits"]
    assert digits == ["1012"], digits
    played = [m.get("Application-Response") for m in events
              if m.get("Event-Name") == "CHANNEL_EXECUTE_COMPLETE"
              and m.get("Application-Name") == "play"]
    assert played[:1] == ["FILE PLAYED"], played          # the greeting was found and played
    names = [m.get("Event-Name") for m in events]
    assert "CHANNEL_BRIDGE" in names and "CHANNEL_HANGUP_COMPLETE" in names, names
