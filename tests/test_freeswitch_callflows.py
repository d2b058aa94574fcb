"""Callflows on a real FreeSWITCH (configured from deploy/freeswitch/), driven by SIPp: the
main paths of issue #11, each as an operator would set it up (users, groups, callflows
through ops, the CLI's functions).

- a user with two registered phones: both ring, the first to answer wins, the other is
  cancelled;
- an IVR menu: the caller keys an entry (SIP INFO digits, sent once the menu listens) and
  the menu rings the entry's device;
- time of day, by a fixed clock (WHISTLE_FIXED_CLOCK of the callflow worker): day rings the
  desk, night answers 480;
- a conference of three: three callers in one room at once;
- a ring group, sequential, nobody answering: it falls to voicemail, which takes a message.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests import fskit, phonekit, support
from tests.bridgekit import EventSink
from whistle_tasks.ops import callflows as cf_ops
from whistle_tasks.ops import provisioning
from whistle_tasks.ops import users as user_ops

CALLER, CALLER_PW = "1000", "pw-caller"
#: the callflow worker's clock: Monday 3 June 2024, 09:30 UTC
CLOCK = "2024-06-03T09:30:00+00:00"


@pytest.fixture(scope="module", autouse=True)
def fixed_clock() -> Iterator[None]:
    """The platform's workers inherit the environment: their clock is fixed (autouse, so it
    is set before the module's FreeSWITCH platform starts them)."""
    before = os.environ.get("WHISTLE_FIXED_CLOCK")
    os.environ["WHISTLE_FIXED_CLOCK"] = CLOCK
    yield
    if before is None:
        os.environ.pop("WHISTLE_FIXED_CLOCK", None)
    else:
        os.environ["WHISTLE_FIXED_CLOCK"] = before


pytestmark = pytest.mark.usefixtures("fixed_clock", "freeswitch")


@pytest.fixture()
def account(realm: str) -> str:
    provisioning.create_device(realm, CALLER, password=CALLER_PW)
    return realm


@pytest.fixture()
def sink() -> Iterator[EventSink]:
    s = EventSink()
    yield s
    s.close()


def call(fs: fskit.Platform, realm: str, number: str, scenario: str = "uac_call.xml",
         hold_ms: int = 1000, **kwargs: Any) -> fskit.SippResult:  # noqa: ANN401
    return fs.sipp.run(scenario, port=phonekit.udp_port(), service=number, user=CALLER,
                       password=CALLER_PW, variables={"realm": realm, "caller": CALLER},
                       extra=["-d", str(hold_ms)], timeout=90, **kwargs)


def test_a_user_with_two_phones_the_first_to_answer_wins(freeswitch: fskit.Platform,
                                                         account: str) -> None:
    realm = account
    desk, soft = (phonekit.register(freeswitch, realm, "1001"),
                  phonekit.register(freeswitch, realm, "1002"))
    user_ops.create_user(realm, "alice")
    user_ops.add_device(realm, "alice", "1001")
    user_ops.add_device(realm, "alice", "1002")
    cf_ops.save(realm, {"numbers": ["2000"], "flow": {
        "module": "user", "data": {"username": "alice", "timeout": 20},
        "children": {"_": {"module": "hangup"}}}})
    ringing = phonekit.sipp_phone(freeswitch, "uas_ring_cancel.xml", desk, "1001")
    answering = phonekit.sipp_phone(freeswitch, "uas_answer.xml", soft, "1002")
    caller = call(freeswitch, realm, "2000")
    rang, answered = ringing.wait(30), answering.wait(30)
    assert caller.ok and caller.final_status("INVITE") == "200", caller.describe()
    assert answered.received() == ["INVITE", "ACK", "BYE"], answered.describe()
    assert rang.ok and rang.received()[:2] == ["INVITE", "CANCEL"], rang.describe()


def test_an_ivr_menu_rings_the_keyed_entry(freeswitch: fskit.Platform, account: str,
                                           sink: EventSink) -> None:
    realm = account
    port = phonekit.register(freeswitch, realm, "1012")
    cf_ops.save(realm, {"numbers": ["5000"], "flow": {
        "module": "menu", "data": {"greeting": "ivr/ivr-welcome_to_freeswitch.wav",
                                   "timeout": 10},
        "children": {"1012": {"module": "device", "data": {"username": "1012"}},
                     "_": {"module": "hangup"}}}})
    answering = phonekit.sipp_phone(freeswitch, "uas_answer.xml", port, "1012")
    done: dict[str, fskit.SippResult] = {}
    thread = threading.Thread(target=lambda: done.setdefault(
        "caller", call(freeswitch, realm, "5000", "uac_dtmf_info.xml", hold_ms=1500)))
    thread.start()
    collecting = support.wait_until(lambda: next(
        (m for m in sink.drain(len(sink.messages) + 1, timeout=0.3)
         if m.get("Event-Name") == "CHANNEL_EXECUTE"
         and m.get("Application-Name") == "play_and_collect_digits"
         and (m.get("Custom-Channel-Vars") or {}).get("Realm") == realm), None),
        timeout=30, what="the menu to listen")
    assert "+OK" in freeswitch.fs.cli(f"uuid_send_info {collecting['Call-ID']} text plain menu")
    thread.join(90)
    answered = answering.wait(30)
    assert done["caller"].ok, done["caller"].describe()
    assert answered.received() == ["INVITE", "ACK", "BYE"], answered.describe()


@pytest.mark.parametrize(("zone", "expected"), [("Europe/Paris", "day"),
                                                ("America/Los_Angeles", "night")])
def test_time_of_day_by_a_fixed_clock(freeswitch: fskit.Platform, zone: str,
                                      expected: str) -> None:
    # 09:30 UTC on a Monday: 11:30 in Paris (open), 02:30 in Los Angeles (closed)
    realm = f"{support.unique('tod')}.example.com"
    provisioning.create_account("TOD", realm, timezone=zone)
    provisioning.create_device(realm, CALLER, password=CALLER_PW)
    port = phonekit.register(freeswitch, realm, "1001")
    cf_ops.save(realm, {"numbers": ["3000"], "flow": {
        "module": "temporal_route", "data": {"rules": [
            {"name": "open", "days": ["monday", "tuesday", "wednesday", "thursday", "friday"],
             "start": "08:00", "end": "18:00"}]},
        "children": {"open": {"module": "device", "data": {"username": "1001"}},
                     "_": {"module": "respond", "data": {"code": 480,
                                                         "message": "Closed"}}}}})
    if expected == "day":
        answering = phonekit.sipp_phone(freeswitch, "uas_answer.xml", port, "1001")
        caller = call(freeswitch, realm, "3000")
        assert caller.final_status("INVITE") == "200", caller.describe()
        assert answering.wait(30).received() == ["INVITE", "ACK", "BYE"]
    else:
        caller = call(freeswitch, realm, "3000", "uac_fail.xml")
        assert caller.final_status("INVITE") == "480", caller.describe()


def test_a_conference_of_three(freeswitch: fskit.Platform, account: str) -> None:
    realm = account
    cf_ops.save(realm, {"numbers": ["7000"], "flow": {
        "module": "conference", "data": {"name": "board"}}})
    results: list[fskit.SippResult] = []
    threads = [threading.Thread(target=lambda: results.append(
        call(freeswitch, realm, "7000", hold_ms=8000))) for _ in range(3)]
    for thread in threads:
        thread.start()
    room = f"{provisioning.get_account(realm)['_id']}-board"
    listing = support.wait_until(
        lambda: (out := freeswitch.fs.cli(f"conference {room} list", check=False))
        and out.count(";") and len(out.strip().splitlines()) >= 3 and out,
        timeout=30, what="three members in the room")
    for thread in threads:
        thread.join(90)
    assert len(listing.strip().splitlines()) == 3, listing
    assert [r.final_status("INVITE") for r in results] == ["200"] * 3, \
        [r.describe() for r in results]


def test_a_sequential_ring_group_nobody_answers_falls_to_its_child(
        freeswitch: fskit.Platform, account: str, sink: EventSink) -> None:
    """Each member rings in turn for its own timeout; then the no_answer child runs (a
    prompt, then the call ends): a failed bridge returns to the callflow on the real switch
    (continue_on_fail) instead of hanging the caller up."""
    realm = account
    first, second = (phonekit.register(freeswitch, realm, "1001"),
                     phonekit.register(freeswitch, realm, "1002"))
    cf_ops.save(realm, {"numbers": ["4100"], "flow": {
        "module": "ring_group", "data": {"strategy": "sequential", "members": [
            {"type": "device", "id": "1001", "timeout": 3},
            {"type": "device", "id": "1002", "timeout": 3}]},
        "children": {"no_answer": {"module": "play",
                                   "data": {"media": "ivr/ivr-not_available.wav"}}}}})
    one = phonekit.sipp_phone(freeswitch, "uas_ring_cancel.xml", first, "1001")
    two = phonekit.sipp_phone(freeswitch, "uas_ring_cancel.xml", second, "1002")
    caller = call(freeswitch, realm, "4100", "uac_hungup.xml")
    assert caller.ok and caller.final_status("INVITE") == "200", caller.describe()
    rang_one, rang_two = one.wait(30), two.wait(30)
    for rang in (rang_one, rang_two):
        assert rang.ok and rang.received()[:2] == ["INVITE", "CANCEL"], rang.describe()
    events = [m for m in sink.settle(1.0) if (m.get("Custom-Channel-Vars") or {}).get(
        "Realm") == realm and m.get("Event-Name") == "CHANNEL_EXECUTE_COMPLETE"]
    outcomes = [(m.get("Application-Name"), m.get("Application-Response")) for m in events
                if m.get("Application-Name") in ("bridge", "play")]
    assert outcomes == [("bridge", "NO_ANSWER"), ("bridge", "NO_ANSWER"),
                        ("play", "FILE PLAYED")], outcomes


def test_a_sequential_ring_group_falls_to_voicemail(freeswitch: fskit.Platform,
                                                   account: str, sink: EventSink) -> None:
    realm = account
    first, second = (phonekit.register(freeswitch, realm, "1001"),
                     phonekit.register(freeswitch, realm, "1002"))
    user_ops.save_group(realm, "sales", [{"type": "device", "id": "1001", "timeout": 4},
                                         {"type": "device", "id": "1002", "timeout": 4}],
                        strategy="sequential")
    vm_ops = pytest.importorskip("whistle_tasks.ops.voicemail",
                                 reason="the voicemail half of issue #11 is not here yet")

    vm_ops.create_box(realm, mailbox="1000")
    cf_ops.save(realm, {"numbers": ["4000"], "flow": {
        "module": "ring_group", "data": {"group": "sales"},
        "children": {"no_answer": {"module": "voicemail", "data": {"mailbox": "1000"}}}}})
    one, two = (phonekit.sipp_phone(freeswitch, "uas_ring_cancel.xml", p, u)
                for p, u in ((first, "1001"), (second, "1002")))
    caller = call(freeswitch, realm, "4000", hold_ms=6000)
    assert caller.final_status("INVITE") == "200", caller.describe()   # voicemail answers
    for rang in (one.wait(30), two.wait(30)):
        assert rang.received()[:2] == ["INVITE", "CANCEL"], rang.describe()
    events = [m for m in sink.settle(1.0) if m.get("Event-Name") == "CHANNEL_EXECUTE"
              and (m.get("Custom-Channel-Vars") or {}).get("Realm") == realm]
    assert "record" in [m.get("Application-Name") for m in events]


def test_park_then_retrieve(freeswitch: fskit.Platform, account: str, sink: EventSink) -> None:
    realm = account
    cf_ops.save(realm, {"numbers": ["7110"], "flow": {"module": "park", "data": {"slot": "701"}}})
    cf_ops.save(realm, {"numbers": ["7111"], "flow": {
        "module": "retrieve", "data": {"slot": "701"},
        "children": {"empty": {"module": "respond", "data": {"code": 404}}}}})
    account_doc = provisioning.get_account(realm)
    lot = f"{account_doc['_id']}-default"
    done: dict[str, fskit.SippResult] = {}
    # the parked caller waits until the retriever hangs up (the switch then ends its call)
    parked = threading.Thread(target=lambda: done.setdefault(
        "parked", call(freeswitch, realm, "7110", "uac_hungup.xml")))
    parked.start()
    from whistle_tasks.data import parking

    support.wait_until(lambda: parking.holder({"account_db": account_doc["pvt_account_db"]},
                                              lot, "701"), timeout=30, what="the call parked")
    retriever = call(freeswitch, realm, "7111", hold_ms=2000)
    parked.join(90)
    assert retriever.ok and retriever.final_status("INVITE") == "200", retriever.describe()
    assert done["parked"].ok, done["parked"].describe()
    events = sink.settle(1.0)
    parking_calls = {m["Call-ID"] for m in events if m.get("Event-Name") == "CHANNEL_EXECUTE"
                     and m.get("Application-Name") == "valet_park"}
    bridges = {frozenset((m["Call-ID"], m.get("Other-Leg-Call-ID"))) for m in events
               if m.get("Event-Name") == "CHANNEL_BRIDGE" and m["Call-ID"] in parking_calls}
    assert len(parking_calls) == 2 and frozenset(parking_calls) in bridges, (parking_calls,
                                                                             bridges)
    support.wait_until(lambda: parking.holder({"account_db": account_doc["pvt_account_db"]},
                                              lot, "701") is None, timeout=20,
                       what="the slot freed")
