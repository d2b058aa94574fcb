"""Message waiting at FreeSWITCH's edge (switch_bridge.freeswitch.mwi): the MESSAGE_WAITING
headers of an mwi_update, the mwi_query of a MESSAGE_QUERY, and the ESL sendevent frame."""

from __future__ import annotations

import pytest

import schemas
from switch_bridge.freeswitch import mwi
from switch_bridge.freeswitch.esl import protocol
from switch_bridge.freeswitch.esl.protocol import Event


def update(**fields):
    return schemas.build("mwi_update", {"To": "1000@example.com", "Messages-New": 2,
                                        "Messages-Saved": 1, **fields})


def test_message_waiting_headers():
    assert mwi.message_waiting(update()) == [
        ("MWI-Messages-Waiting", "yes"),
        ("MWI-Message-Account", "sip:1000@example.com"),
        ("MWI-Voice-Message", "2/1 (0/0)")]


def test_no_new_message_turns_the_lamp_off_and_targets_are_passed_on():
    headers = dict(mwi.message_waiting(update(**{
        "Messages-New": 0, "Messages-Saved": 3, "Profile-Name": "whistle",
        "Subscription-Call-ID": "sub-1@192.0.2.1", "Registration-Call-ID": "reg-9"})))
    assert headers["MWI-Messages-Waiting"] == "no"
    assert headers["MWI-Voice-Message"] == "0/3 (0/0)"
    assert headers["Sofia-Profile"] == "whistle"
    assert headers["Sub-Call-ID"] == "sub-1@192.0.2.1"
    assert headers["Call-ID"] == "reg-9"


@pytest.mark.parametrize("to", ["1000", "@example.com", "10 00@example.com",
                                "1000@exa\nmple.com", 'x"y@example.com'])
def test_unusable_accounts_are_refused(to):
    with pytest.raises(mwi.MwiError):
        mwi.message_waiting({"To": to, "Messages-New": 1, "Messages-Saved": 0})


def test_a_target_with_blanks_is_refused():
    with pytest.raises(mwi.MwiError, match="Sub"):
        mwi.message_waiting(update(**{"Subscription-Call-ID": "a b"}))


def test_sendevent_frame_and_injection():
    frame = protocol.sendevent("MESSAGE_WAITING", mwi.message_waiting(update()))
    assert frame == (b"sendevent MESSAGE_WAITING\nMWI-Messages-Waiting: yes\n"
                     b"MWI-Message-Account: sip:1000@example.com\n"
                     b"MWI-Voice-Message: 2/1 (0/0)\n\n")
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        protocol.sendevent("MESSAGE_WAITING", [("MWI-Message-Account", "a\nEvil: 1")])
    with pytest.raises(ValueError, match="whitespace"):
        protocol.sendevent("MESSAGE WAITING", [])


def query_event(**headers):
    pairs = [("Event-Name", "MESSAGE_QUERY"), ("FreeSWITCH-Hostname", "fs1"),
             *headers.items()]
    return Event.from_pairs(pairs)


def test_mwi_query_from_a_subscription():
    msg = mwi.mwi_query(query_event(**{"Message-Account": "sip:1000@example.com",
                                       "VM-Sofia-Profile": "whistle",
                                       "VM-sub-call-id": "abc@10.0.0.1"}), node="bridge1",
                        server_id="bridge.x")
    schemas.validate(msg)
    assert (msg["Username"], msg["Realm"]) == ("1000", "example.com")
    assert msg["Subscription-Call-ID"] == "abc@10.0.0.1"
    assert msg["Profile-Name"] == "whistle" and msg["Switch-Hostname"] == "fs1"
    assert "Registration-Call-ID" not in msg and msg["Server-ID"] == "bridge.x"


def test_mwi_query_from_a_registration_and_other_events():
    msg = mwi.mwi_query(query_event(**{"Message-Account": "sip:1000@example.com",
                                       "VM-Call-ID": "reg-1", "VM-sub-call-id": "_undef_"}),
                        node="b")
    assert msg["Registration-Call-ID"] == "reg-1" and "Subscription-Call-ID" not in msg
    assert mwi.mwi_query(Event.from_pairs([("Event-Name", "HEARTBEAT")]), node="b") is None
    with pytest.raises(mwi.MwiError):
        mwi.mwi_query(query_event(**{"Message-Account": "sip:nobody"}), node="b")


# ------------------------------------------------------------ through the bridge

import time  # noqa: E402
import uuid  # noqa: E402

from kombu import Connection, Consumer, Queue  # noqa: E402

from schemas import contracts  # noqa: E402
from schemas.keys import mwi_query_key  # noqa: E402
from tests import support  # noqa: E402
from tests.esl_standin import EslStandIn  # noqa: E402
from whistle_tasks.core import amqp  # noqa: E402
from whistle_tasks.core.config import settings  # noqa: E402


def sendevents(standin: EslStandIn) -> list:
    return [c for c in standin.commands if c.verb == "sendevent"]


def test_bridge_turns_an_update_into_message_waiting(bridge: dict, standin: EslStandIn) -> None:
    publisher = amqp.Publisher(settings.amqp_url)
    first = update(**{"To": "2000@mwi.example.com", "Subscription-Call-ID": "s-1"})

    def first_sent() -> bool:  # (again until the bridge's queue is there)
        publisher.send(contracts.MWI_UPDATE, first)
        time.sleep(0.2)
        return any("2000@" in c.headers.get("mwi-message-account", "")
                   for c in sendevents(standin))

    standin.heartbeat()  # the bridge learns the node's name (FreeSWITCH-Hostname)
    try:
        support.wait_until(first_sent, timeout=10, what="the first MESSAGE_WAITING")
        time.sleep(0.5)
        before = len(sendevents(standin))
        # an update for another switch is not this node's to send
        publisher.send(contracts.MWI_UPDATE, update(**{"To": "2001@mwi.example.com",
                                                       "Switch-Hostname": "fs-elsewhere"}))
        publisher.send(contracts.MWI_UPDATE, update(**{"To": "2002@mwi.example.com",
                                                       "Switch-Hostname": "fs-test-1"}))
        # a broken one is refused (logged, counted) and changes nothing
        publisher.publish_api({"Event-Category": "presence", "Event-Name": "mwi_update"},
                              amqp.CALLMGR, "mwi.update.x.y")
        support.wait_until(lambda: len(sendevents(standin)) >= before + 1, timeout=10,
                           what="the MESSAGE_WAITING of 2002")
        time.sleep(0.5)
    finally:
        publisher.close()
    sent = [dict(c.header_list)["MWI-Message-Account"] for c in sendevents(standin)[before:]]
    assert sent == ["sip:2002@mwi.example.com"]
    (one, *_) = [c for c in sendevents(standin) if "2000@" in c.headers["mwi-message-account"]]
    assert one.line == "sendevent MESSAGE_WAITING"
    assert one.header_list == [("MWI-Messages-Waiting", "yes"),
                               ("MWI-Message-Account", "sip:2000@mwi.example.com"),
                               ("MWI-Voice-Message", "2/1 (0/0)"), ("Sub-Call-ID", "s-1")]


def test_bridge_asks_the_voicemail_side_on_message_query(bridge: dict,
                                                         standin: EslStandIn) -> None:
    realm = f"{support.unique('q')}.example.com"
    got: list = []
    with Connection(settings.amqp_url) as conn:
        queue = Queue(f"test-mwi-{uuid.uuid4().hex}", exchange=amqp.CALLMGR,
                      routing_key=mwi_query_key(realm), exclusive=True, auto_delete=True)
        with Consumer(conn.channel(), queues=[queue], accept=["json"], no_ack=True,
                      callbacks=[lambda body, message: got.append((body, message.headers))]):
            standin.send_event("MESSAGE_QUERY", [
                ("Message-Account", f"sip:1000@{realm}"), ("VM-Sofia-Profile", "whistle"),
                ("VM-sub-call-id", "sub-77")])
            standin.send_event("MESSAGE_QUERY", [("Message-Account", "garbage")])

            def drained() -> bool:
                try:
                    conn.drain_events(timeout=0.3)
                except TimeoutError:
                    pass
                return bool(got)

            support.wait_until(drained, timeout=10, what="the mwi_query")
    (body, headers), = got
    query = body[0][0]
    assert headers["task"] == "callflow.mwi_query"
    contracts.MWI_QUERY.check_request(query)
    assert (query["Username"], query["Realm"]) == ("1000", realm)
    assert query["Subscription-Call-ID"] == "sub-77"
    assert query["Profile-Name"] == "whistle" and query["Switch-Hostname"] == "fs-test-1"
