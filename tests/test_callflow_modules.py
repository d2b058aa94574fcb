"""Every callflow module through the whole chain, FreeSWITCH stood in for at its event socket:
a dialplan fetch → the router parks the callflow's number → the bridge sends route_win → the
callflow worker (Celery, gevent pool) runs the tree, and each command reaches the stand-in as
the sendmsg FreeSWITCH would get. Each module is also hung up in the middle: the task ends,
nothing more is sent, and the call's event queue is gone."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests import callflowkit as kit
from tests import support
from tests.esl_standin import EslStandIn
from whistle_tasks.data import parking
from whistle_tasks.ops import callflows as cf_ops
from whistle_tasks.ops import provisioning
from whistle_tasks.ops import users as user_ops

pytestmark = pytest.mark.usefixtures("whapp_worker")

#: the callflow worker's clock: Monday 3 June 2024, 09:30 UTC
CLOCK = "2024-06-03T09:30:00+00:00"


@pytest.fixture(scope="module", autouse=True)
def workers() -> Iterator[None]:
    router = support.start_worker("router", name="cf-router", pool="threads", concurrency=8)
    callflow = support.start_worker("callflow", name="cf-callflow", pool="gevent",
                                    concurrency=100, env={"WHISTLE_FIXED_CLOCK": CLOCK})
    yield
    router.stop()
    callflow.stop()
    assert "Traceback" not in callflow.output(), callflow.output()[-4000:]


@pytest.fixture()
def script(standin: EslStandIn) -> Iterator[kit.Script]:
    s = kit.Script(standin)
    yield s
    s.close()


def save(realm: str, number: str, flow: dict[str, Any]) -> None:
    cf_ops.save(realm, {"numbers": [number], "flow": flow})


def play(media: str, **children: Any) -> dict[str, Any]:  # noqa: ANN401
    node: dict[str, Any] = {"module": "play", "data": {"media": media}}
    if children:
        node["children"] = children
    return node


def phones(realm: str, client: support.Client, *users: str) -> None:
    for index, user in enumerate(users):
        provisioning.create_device(realm, user, password="pw")
        kit.register(client, realm, user, f"<sip:{user}@192.0.2.{10 + index}:5060>")


# --- media and control ---------------------------------------------------------------------

def test_play_say_then_hangup(bridge: dict, standin: EslStandIn, realm: str,
                              script: kit.Script) -> None:
    save(realm, "7001", play("ivr/welcome.wav", _={"module": "say", "data": {
        "text": "42", "method": "iterated"}}))
    call_id = kit.place(bridge, realm, "7001")
    assert kit.wait_done(standin, call_id) == ["answer", "playback", "say", "hangup"]
    played = kit.apps(standin, call_id)
    assert played[1] == ("playback", "ivr/welcome.wav")
    assert played[2] == ("say", "en number iterated 42")


def test_respond_early_then_hangup_with_a_cause(bridge: dict, standin: EslStandIn, realm: str,
                                                script: kit.Script) -> None:
    save(realm, "7003", {"module": "respond", "data": {"code": 183}, "children": {
        "_": play("ivr/early.wav", _={"module": "hangup", "data": {"cause": "USER_BUSY"}})}})
    call_id = kit.place(bridge, realm, "7003")
    support.wait_until(lambda: kit.names(standin, call_id)[-1:] == ["hangup"], timeout=20)
    assert kit.apps(standin, call_id) == [("respond", "183 Session Progress"),
                                          ("answer", None), ("playback", "ivr/early.wav"),
                                          ("hangup", "USER_BUSY")]


def test_record_a_prompt(bridge: dict, standin: EslStandIn, realm: str,
                         script: kit.Script) -> None:
    save(realm, "7004", {"module": "record", "data": {"name": "welcome", "time_limit": 30}})
    script.on("record", {"response": "/tmp/x.wav"})
    call_id = kit.place(bridge, realm, "7004")
    # recorded in the switch's record directory, then stored (the stand-in has no http_put
    # here: tests/test_freeswitch_voicemail.py stores for real); the CDR's Recording-ID set
    names = kit.wait_done(standin, call_id, timeout=40)
    assert names == ["answer", "playback", "set", "set", "record", "hangup"]
    applied = kit.apps(standin, call_id)
    assert applied[2] == ("set", "ecallmgr_Recording-ID=media-welcome")
    account = provisioning.get_account(realm)["_id"]
    assert re.fullmatch(rf"/\S+/prompt-{account}-welcome-[0-9a-f]{{8}}\.wav 30 500 5",
                        applied[4][1] or ""), applied[4]
    assert [c for c in standin.commands if c.verb == "bgapi" and "http_put" in c.args]


def test_transfer_runs_the_other_number(bridge: dict, standin: EslStandIn, realm: str,
                                        script: kit.Script) -> None:
    save(realm, "7010", play("ivr/target.wav"))
    save(realm, "7011", {"module": "transfer", "data": {"number": "7010"}})
    save(realm, "7012", {"module": "transfer", "data": {"number": "7999"},
                         "children": {"unavailable": play("ivr/nobody.wav")}})
    call_id = kit.place(bridge, realm, "7011")
    assert kit.wait_done(standin, call_id) == ["answer", "playback", "hangup"]
    assert kit.apps(standin, call_id)[1] == ("playback", "ivr/target.wav")
    call_id = kit.place(bridge, realm, "7012")
    kit.wait_done(standin, call_id)
    assert kit.apps(standin, call_id)[1] == ("playback", "ivr/nobody.wav")


# --- menu -------------------------------------------------------------------------------------

MENU = {"module": "menu", "data": {"greeting": "ivr/main.wav", "retries": 2, "timeout": 3,
                                   "invalid_media": "ivr/invalid.wav"},
        "children": {"1": play("ivr/sales.wav"), "2": play("ivr/support.wav"),
                     "timeout": play("ivr/bye.wav")}}


def test_menu_goes_to_the_digit(bridge: dict, standin: EslStandIn, realm: str,
                                script: kit.Script) -> None:
    save(realm, "7020", MENU)
    script.on("play_and_get_digits", kit.digits("2"))
    call_id = kit.place(bridge, realm, "7020")
    assert kit.wait_done(standin, call_id) == ["answer", "play_and_get_digits", "playback",
                                               "hangup"]
    collect = kit.apps(standin, call_id)[1][1] or ""
    # min max tries timeout terminators greeting failed-media variable regex
    assert collect.startswith("1 1 1 3000 # ivr/main.wav ")
    assert kit.apps(standin, call_id)[2] == ("playback", "ivr/support.wav")


def test_menu_retries_an_invalid_entry_then_times_out(bridge: dict, standin: EslStandIn,
                                                      realm: str, script: kit.Script) -> None:
    save(realm, "7021", MENU)
    script.on("play_and_get_digits", kit.digits("7"), times=1)
    script.on("play_and_get_digits", kit.digits(""))
    call_id = kit.place(bridge, realm, "7021")
    kit.wait_done(standin, call_id)
    assert kit.apps(standin, call_id)[1:] == [
        ("play_and_get_digits", kit.apps(standin, call_id)[1][1]),
        ("playback", "ivr/invalid.wav"),
        ("play_and_get_digits", kit.apps(standin, call_id)[3][1]),
        ("playback", "ivr/bye.wav"),     # the timeout child
        ("hangup", None)]


# --- time of day ------------------------------------------------------------------------------

DAY_NIGHT = {"module": "temporal_route", "data": {"rules": [
    {"name": "day", "days": ["monday", "tuesday", "wednesday", "thursday", "friday"],
     "start": "08:00", "end": "18:00"}]},
    "children": {"day": play("ivr/day.wav"), "_": play("ivr/night.wav")}}


def test_time_of_day_by_the_accounts_time_zone(bridge: dict, standin: EslStandIn,
                                               script: kit.Script) -> None:
    # the worker's clock says Monday 09:30 UTC: day in London, night (05:30) in New York
    for zone, expected in (("Europe/London", "ivr/day.wav"),
                           ("America/New_York", "ivr/night.wav")):
        realm = f"{support.unique('tz')}.example.com"
        provisioning.create_account("TZ", realm, timezone=zone)
        save(realm, "7030", DAY_NIGHT)
        call_id = kit.place(bridge, realm, "7030")
        kit.wait_done(standin, call_id)
        assert kit.apps(standin, call_id)[1] == ("playback", expected), zone


# --- ringing ----------------------------------------------------------------------------------

def bridges(standin: EslStandIn, call_id: str) -> list[str]:
    return [arg or "" for app, arg in kit.apps(standin, call_id) if app == "bridge"]


def test_device_rings_and_falls_to_its_child(bridge: dict, standin: EslStandIn, realm: str,
                                             client: support.Client,
                                             script: kit.Script) -> None:
    phones(realm, client, "1001")
    save(realm, "7040", {"module": "device", "data": {"username": "1001", "timeout": 15},
                         "children": {"no_answer": play("ivr/vm.wav")}})
    script.on("bridge", kit.disposition("NO_ANSWER"))
    call_id = kit.place(bridge, realm, "7040")
    assert kit.wait_done(standin, call_id) == ["set", "bridge", "answer", "playback", "hangup"]
    assert kit.apps(standin, call_id)[0] == ("set", "continue_on_fail=true")
    (dial,) = bridges(standin, call_id)
    assert "originate_timeout=15" in dial
    assert dial.endswith("sofia/internal/sip:1001@192.0.2.10:5060")


def test_user_rings_all_its_phones_at_once(bridge: dict, standin: EslStandIn, realm: str,
                                           client: support.Client, script: kit.Script) -> None:
    phones(realm, client, "2001", "2002", "2003")
    user_ops.create_user(realm, "alice", caller_id={"name": "Alice", "number": "2000"})
    user_ops.add_device(realm, "alice", "2001")
    user_ops.add_device(realm, "alice", "2002")
    save(realm, "7050", {"module": "user", "data": {"username": "alice"},
                         "children": {"_": play("ivr/vm.wav")}})
    script.on("bridge", kit.disposition("SUCCESS"))
    call_id = kit.place(bridge, realm, "7050")
    assert kit.wait_done(standin, call_id) == ["set", "bridge", "hangup"]
    (dial,) = bridges(standin, call_id)
    assert "sip:2001@192.0.2.10:5060" in dial and "sip:2002@192.0.2.11:5060" in dial
    assert "2003" not in dial and "," in dial.split("}", 1)[1]      # simultaneous


def test_user_do_not_disturb_and_forwarding(bridge: dict, standin: EslStandIn, realm: str,
                                            client: support.Client,
                                            script: kit.Script) -> None:
    phones(realm, client, "3001")
    user_ops.create_user(realm, "bob", caller_id={"name": "Bob", "number": "3000"})
    user_ops.add_device(realm, "bob", "3001")
    save(realm, "7060", {"module": "user", "data": {"username": "bob"},
                         "children": {"unavailable": play("ivr/dnd.wav"),
                                      "no_answer": play("ivr/vm.wav")}})
    save(realm, "7069", play("ivr/forwarded.wav"))
    user_ops.set_dnd(realm, "bob", True)
    call_id = kit.place(bridge, realm, "7060")
    assert kit.wait_done(standin, call_id) == ["answer", "playback", "hangup"]
    assert kit.apps(standin, call_id)[1] == ("playback", "ivr/dnd.wav")
    user_ops.set_dnd(realm, "bob", False)
    # forward on no answer to a URI, presenting Bob's own caller id
    user_ops.set_forward(realm, "bob", target="sip:bob@mobile.example.net", when=["no_answer"],
                         keep_caller_id=False)
    script.on("bridge", kit.disposition("NO_ANSWER"), times=1)
    script.on("bridge", kit.disposition("SUCCESS"))
    call_id = kit.place(bridge, realm, "7060")
    assert kit.wait_done(standin, call_id) == ["set", "bridge", "set", "bridge", "hangup"]
    first, second = bridges(standin, call_id)
    assert "sip:3001@" in first
    assert second.endswith("sofia/internal/sip:bob@mobile.example.net")
    assert "origination_caller_id_name=Bob" in second
    # always forwarded to a number: that number's callflow runs
    user_ops.set_forward(realm, "bob", target="7069")
    call_id = kit.place(bridge, realm, "7060")
    assert kit.wait_done(standin, call_id) == ["answer", "playback", "hangup"]
    assert kit.apps(standin, call_id)[1] == ("playback", "ivr/forwarded.wav")


def test_ring_group_sequential_falls_to_voicemail(bridge: dict, standin: EslStandIn,
                                                  realm: str, client: support.Client,
                                                  script: kit.Script) -> None:
    phones(realm, client, "4001", "4002")
    user_ops.create_user(realm, "carol")
    user_ops.add_device(realm, "carol", "4002")
    user_ops.save_group(realm, "sales", [{"type": "device", "id": "4001", "timeout": 10},
                                         {"type": "user", "id": "carol", "delay": 2}],
                        strategy="sequential")
    save(realm, "7070", {"module": "ring_group", "data": {"group": "sales"},
                         "children": {"no_answer": play("ivr/vm-sales.wav")}})
    script.on("bridge", kit.disposition("NO_ANSWER"))
    call_id = kit.place(bridge, realm, "7070")
    assert kit.wait_done(standin, call_id) == ["set", "bridge", "set", "bridge", "answer",
                                               "playback", "hangup"]
    first, second = bridges(standin, call_id)
    assert "originate_timeout=10" in first and "sip:4001@" in first and "4002" not in first
    assert "originate_timeout=22" in second and "leg_delay_start=2" in second and "4002@" in second
    assert kit.apps(standin, call_id)[5] == ("playback", "ivr/vm-sales.wav")


def test_ring_group_simultaneous_with_member_knobs(bridge: dict, standin: EslStandIn,
                                                   realm: str, client: support.Client,
                                                   script: kit.Script) -> None:
    phones(realm, client, "5001", "5002")
    save(realm, "7080", {"module": "ring_group", "data": {"timeout": 25, "members": [
        {"type": "device", "id": "5001", "timeout": 20},
        {"type": "device", "id": "5002", "delay": 5},
        {"type": "number", "id": "7089"}]}, "children": {"_": {"module": "hangup"}}})
    save(realm, "7089", {"module": "forward", "data": {"uri": "sip:desk@pbx.example.net"}})
    script.on("bridge", kit.disposition("USER_BUSY"))
    call_id = kit.place(bridge, realm, "7080")
    assert kit.wait_done(standin, call_id) == ["set", "bridge", "hangup"]
    (dial,) = bridges(standin, call_id)
    assert "originate_timeout=25" in dial
    legs = dial.split("}", 1)[1].split(",")
    assert len(legs) == 3 and "leg_timeout=20" in legs[0] and "leg_delay_start=5" in legs[1]
    assert legs[2].endswith("sip:desk@pbx.example.net")


def test_forward_out_of_a_gateway(bridge: dict, standin: EslStandIn, realm: str,
                                  script: kit.Script) -> None:
    save(realm, "7090", {"module": "forward", "data": {"gateway": "carrier.example.com",
                                                        "number": "+14155550123",
                                                        "format": "npan"},
                         "children": {"busy": play("ivr/busy.wav")}})
    script.on("bridge", kit.disposition("USER_BUSY"))
    call_id = kit.place(bridge, realm, "7090")
    kit.wait_done(standin, call_id)
    (dial,) = bridges(standin, call_id)
    assert dial.endswith("sofia/internal/sip:4155550123@carrier.example.com")
    assert kit.apps(standin, call_id)[-2] == ("playback", "ivr/busy.wav")


# --- rooms ------------------------------------------------------------------------------------

def test_conference_with_a_pin(bridge: dict, standin: EslStandIn, realm: str,
                               script: kit.Script) -> None:
    save(realm, "7100", {"module": "conference", "data": {"name": "board", "pin": "4321",
                                                          "moderator": True}})
    call_id = kit.place(bridge, realm, "7100")
    assert kit.wait_done(standin, call_id) == ["answer", "conference", "hangup"]
    account = provisioning.get_account(realm)["_id"]
    assert kit.apps(standin, call_id)[1] == (
        "conference", f"{account}-board@default+4321+flags{{moderator}}")


def test_park_and_retrieve(bridge: dict, standin: EslStandIn, realm: str,
                           script: kit.Script) -> None:
    save(realm, "7110", {"module": "park"})
    save(realm, "7111", {"module": "retrieve", "data": {"slot": "701"},
                         "children": {"empty": play("ivr/empty.wav")}})
    account = provisioning.get_account(realm)
    lot = f"{account['_id']}-default"
    data_account = {"account_db": account["pvt_account_db"]}
    # nobody parked: the retriever hears "empty"
    call_id = kit.place(bridge, realm, "7111")
    assert kit.wait_done(standin, call_id) == ["answer", "playback", "hangup"]
    script.on("valet_park", {"hold": True}, times=1)        # the parked call waits
    script.on("valet_park", {})                              # the retriever connects at once
    parked = kit.place(bridge, realm, "7110")
    support.wait_until(lambda: "valet_park" in kit.names(standin, parked), timeout=10)
    assert kit.apps(standin, parked)[1] == ("say", "en number iterated 701")
    assert kit.apps(standin, parked)[2] == ("valet_park", f"{lot} 701")
    assert parking.holder(data_account, lot, "701") == parked
    retriever = kit.place(bridge, realm, "7111")
    support.wait_until(lambda: "valet_park" in kit.names(standin, retriever), timeout=10)
    # the switch connects the two (uuid_bridge): the parked call's valet_park ends
    standin.release()
    for one, other in ((parked, retriever), (retriever, parked)):
        standin.send_event("CHANNEL_BRIDGE", [("Unique-ID", one), ("Bridge-A-Unique-ID", one),
                                              ("Bridge-B-Unique-ID", other)])
    time.sleep(1.0)
    # connected: neither callflow hangs up while the bridge lasts
    assert kit.names(standin, retriever)[-1] == "valet_park"
    assert kit.names(standin, parked)[-1] == "valet_park"
    for one in (parked, retriever):
        standin.send_event("CHANNEL_UNBRIDGE", [("Unique-ID", one)])
    kit.wait_done(standin, parked)
    kit.wait_done(standin, retriever)
    assert parking.holder(data_account, lot, "701") is None


# --- a call that hangs up in the middle of each module ------------------------------------------

HANGUPS: dict[str, tuple[dict[str, Any], str]] = {
    "play": (play("ivr/long.wav", _=play("ivr/after.wav")), "playback"),
    "say": ({"module": "say", "data": {"text": "1234"}, "children": {"_": play("a.wav")}},
            "say"),
    "record": ({"module": "record", "data": {"name": "p"}, "children": {"_": play("a.wav")}},
               "record"),
    "menu": (MENU, "play_and_get_digits"),
    "temporal_route": (DAY_NIGHT, "playback"),
    "transfer": ({"module": "transfer", "data": {"number": "7299"}}, "playback"),
    "device": ({"module": "device", "data": {"username": "8001"},
                "children": {"_": play("vm.wav")}}, "bridge"),
    "user": ({"module": "user", "data": {"username": "dave"},
              "children": {"_": play("vm.wav")}}, "bridge"),
    "ring_group": ({"module": "ring_group", "data": {"strategy": "sequential", "members": [
        {"type": "device", "id": "8001"}, {"type": "user", "id": "dave"}]},
        "children": {"_": play("vm.wav")}}, "bridge"),
    "forward": ({"module": "forward", "data": {"uri": "sip:x@example.net"},
                 "children": {"_": play("vm.wav")}}, "bridge"),
    "conference": ({"module": "conference", "data": {"name": "r"},
                    "children": {"_": play("bye.wav")}}, "conference"),
    "park": ({"module": "park", "data": {"slot": "750"}}, "valet_park"),
    "retrieve": ({"module": "retrieve", "children": {"_": play("a.wav")}},
                 "play_and_get_digits"),
    "respond": ({"module": "respond", "data": {"code": 183},
                 "children": {"_": play("ivr/ring.wav")}}, "playback"),
}


@pytest.fixture(scope="module")
def hangup_realm(client_module: support.Client) -> str:
    realm = f"{support.unique('hu')}.example.com"
    provisioning.create_account("Hangups", realm)
    phones(realm, client_module, "8001", "8002")
    user_ops.create_user(realm, "dave")
    user_ops.add_device(realm, "dave", "8002")
    save(realm, "7299", play("ivr/transferred.wav"))
    return realm


@pytest.fixture(scope="module")
def client_module() -> Iterator[support.Client]:
    c = support.Client()
    yield c
    c.close()


@pytest.mark.parametrize("name", sorted(HANGUPS))
def test_a_hangup_in_the_middle_leaves_nothing(name: str, bridge: dict, standin: EslStandIn,
                                               hangup_realm: str, script: kit.Script) -> None:
    flow, app = HANGUPS[name]
    number = f"72{sorted(HANGUPS).index(name):02d}"
    save(hangup_realm, number, flow)
    before = len(kit.call_queues())
    script.on(app, {"hold": True})
    call_id = kit.place(bridge, hangup_realm, number)
    support.wait_until(lambda: app in kit.names(standin, call_id), timeout=15,
                       what=f"{name} to run {app}")
    sent = kit.names(standin, call_id)
    assert len(kit.call_queues()) > before        # the call's own event queue meanwhile
    standin.hangup_call(call_id)
    support.wait_until(lambda: len(kit.call_queues()) <= before, timeout=15,
                       what="the call's event queue to go")
    time.sleep(0.3)
    assert kit.names(standin, call_id) == sent, "nothing is sent after the hangup"
    if name == "park":
        account = provisioning.get_account(hangup_realm)
        assert parking.holder({"account_db": account["pvt_account_db"]},
                              f"{account['_id']}-default", "750") is None
