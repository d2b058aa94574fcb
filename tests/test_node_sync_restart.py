"""Control of a call survives a bridge restart (issue #9): the stand-in as FreeSWITCH, two
bridge processes one after the other, the test as the whapp. Its own module: no other
bridge may consume the shared originate queue meanwhile."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import schemas
from schemas import contracts
from tests import bridgekit, support
from tests.esl_standin import EslStandIn
from tests.test_call_control import Whapp, wait_sendmsgs

pytestmark = pytest.mark.usefixtures("whapp_worker")


@pytest.fixture()
def whapp() -> Iterator[Whapp]:
    w = Whapp()
    yield w
    w.close()


def test_control_of_a_call_survives_a_bridge_restart(whapp: Whapp) -> None:
    """A bridge originates a call (under control, its queue recorded on the channel) and
    dies; the next bridge finds the channel, controls it with the same queue, and the
    whapp's next command reaches FreeSWITCH. The call then ends while the event socket is
    down: the whapp is told."""
    node = EslStandIn(hostname=support.unique("fs-restart")).start()
    first = second = sink = None
    try:
        first, _ = bridgekit.start_bridge(node, name="bridge-first")
        node.wait_for_connections(1, timeout=10)
        request = schemas.build("originate_req", {
            "Application-Name": "park", "Server-ID": whapp.server_id,
            "Endpoints": [{"Invite-Format": "route", "Route": "sip:1001@192.0.2.9:5060"}]},
            **{"App-Name": "test"})
        whapp.publisher.send(contracts.ORIGINATE, request)
        answer = whapp.wait("originate_resp")
        call, queue = answer["Call-ID"], answer["Control-Queue"]
        assert call in node.channels
        support.wait_until(lambda: node.channels[call].variables.get(
            "whistle_control_queue") == queue, what="the control queue kept on the channel")
        first.kill()                       # the bridge dies; the call goes on
        first.stop()
        second, port = bridgekit.start_bridge(node, name="bridge-second")
        support.wait_until(lambda: "1 calls controlled again" in second.output(), timeout=20,
                           what="the second bridge to take the call again")
        metrics = bridgekit.metrics(port)
        assert metrics[f'whistle_bridge_esl_node_sessions{{node="127.0.0.1:{node.port}"}}'] == 1
        whapp.command(queue, call, "answer")
        (sent,) = wait_sendmsgs(node, call, 1)
        assert sent.headers.get("execute-app-name") == "answer"
        # the call ends while the event socket is down: its hangup never comes
        sink = bridgekit.EventSink(f"call.CHANNEL_HANGUP_COMPLETE.{call}")
        del node.channels[call]
        node.drop()
        got = sink.drain(1, timeout=20)
        assert [m["Call-ID"] for m in got] == [call] and got[0]["Hangup-Cause"] == "CRASH"
        assert "1 ended while away" in second.output()
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.stop()
        if sink is not None:
            sink.close()
        node.stop()
    assert "Traceback" not in second.output()
