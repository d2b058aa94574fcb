"""Call control and originate through the bridge, FreeSWITCH replaced at its event socket.

The test plays the whapp at the wire: a route stub answers a dialplan lookup with ``park``
and ``Server-ID`` = a queue of the test's own; the bridge sends ``route_win`` there (a
Celery task message ``<Server-ID>.route_win``), and the test publishes commands to the
call's control queue and watches the ``sendmsg`` frames reach the ESL stand-in, which holds
each CHANNEL_EXECUTE_COMPLETE until the test releases it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Consumer, Queue

import schemas
from schemas import contracts
from schemas.keys import call_event_key
from tests import support, xmlcurl
from tests.bridgekit import EventSink, RouteStub, actions, dialplan_body
from tests.esl_standin import Command, EslStandIn
from whistle_tasks.core import amqp
from whistle_tasks.core.config import settings

pytestmark = pytest.mark.usefixtures("whapp_worker")
BRIDGE_ENV = {"WHISTLE_ANSWER_BUDGET_MS": "1500"}


class Whapp:
    """The test's whapp: its queue on ``targeted`` (the Server-ID it answers with) and a
    publisher of commands."""

    def __init__(self) -> None:
        self.server_id = f"test-whapp-{uuid.uuid4().hex[:10]}"
        self.conn = Connection(settings.amqp_url)
        self.received: list[dict[str, Any]] = []
        queue = Queue(self.server_id, exchange=amqp.TARGETED, routing_key=self.server_id,
                      exclusive=True, auto_delete=True)
        self.consumer = Consumer(self.conn.channel(), queues=[queue], callbacks=[self._got],
                                 accept=["json"], no_ack=True)
        self.consumer.consume()
        self.publisher = amqp.Publisher(settings.amqp_url)

    def _got(self, body: Any, message: Any) -> None:  # noqa: ANN401
        # route_win arrives as a Celery task message; originate answers as API messages
        msg = body[0][0] if isinstance(body, list) else body
        msg["_task"] = message.headers.get("task")
        self.received.append(msg)

    def wait(self, event_name: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in self.received:
                if msg.get("Event-Name") == event_name:
                    self.received.remove(msg)
                    return msg
            try:
                self.conn.drain_events(timeout=0.2)
            except TimeoutError:
                pass
        raise AssertionError(f"no {event_name} within {timeout}s: {self.received}")

    def command(self, control_queue: str, call_id: str, app: str, **fields: Any) -> str:  # noqa: ANN401
        msg_id = uuid.uuid4().hex
        msg = schemas.build(app, {**fields, "Call-ID": call_id, "Msg-ID": msg_id},
                            **{"App-Name": "test-whapp"})
        self.publisher.publish_api(msg, amqp.CALLCTL, control_queue)
        return msg_id

    def close(self) -> None:
        self.publisher.close()
        self.conn.release()


@pytest.fixture()
def whapp() -> Iterator[Whapp]:
    w = Whapp()
    yield w
    w.close()


@pytest.fixture()
def stub(realm: str) -> Iterator[RouteStub]:
    s = RouteStub(realm)
    yield s
    s.close()


def sendmsgs(standin: EslStandIn, call_id: str) -> list[Command]:
    return [c for c in standin.commands if c.verb == "sendmsg" and c.args == call_id]


def wait_sendmsgs(standin: EslStandIn, call_id: str, count: int,
                  timeout: float = 10) -> list[Command]:
    support.wait_until(lambda: len(sendmsgs(standin, call_id)) >= count, timeout=timeout,
                       what=f"{count} sendmsg for {call_id}")
    return sendmsgs(standin, call_id)


def app_of(cmd: Command) -> tuple[str, str | None]:
    return cmd.headers.get("execute-app-name", ""), cmd.app_arg


def park_call(bridge: dict, fixtures: Path, realm: str, stub: RouteStub,
              whapp: Whapp) -> tuple[str, str]:
    """A call to 7000 parked and won by the test whapp: (call id, control queue)."""
    stub.answers["7000"] = {"Method": "park", "Server-ID": whapp.server_id,
                            "Custom-Channel-Vars": {"Whapp": "test"}}
    call_id = str(uuid.uuid4())
    _, xml = xmlcurl.post(bridge["port"], "/fs/dialplan", dialplan_body(
        fixtures, realm, "7000", {"Unique-ID": call_id, "Channel-Call-UUID": call_id}))
    assert actions(xml)[-1] == ("park", None)
    win = whapp.wait("route_win")
    assert win["_task"] == f"{whapp.server_id}.route_win"
    assert win["Call-ID"] == call_id
    assert win["Custom-Channel-Vars"]["Whapp"] == "test"
    schemas.validate(win)
    return call_id, win["Control-Queue"]


def test_commands_run_one_at_a_time_in_order(bridge: dict, standin: EslStandIn,
                                              fixtures_dir: Path, realm: str,
                                              stub: RouteStub, whapp: Whapp) -> None:
    standin.hold_completions = True
    standin.app_responses = {"playback": "FILE PLAYED"}
    call_id, queue = park_call(bridge, fixtures_dir, realm, stub, whapp)
    sink = EventSink(call_event_key("*", call_id))
    try:
        answer = whapp.command(queue, call_id, "answer")
        whapp.command(queue, call_id, "play", **{"Media-Name": "ivr/welcome.wav"})
        play2 = whapp.command(queue, call_id, "tones", Tones=[{
            "Frequencies": [440, 480], "Duration-ON": 2000, "Duration-OFF": 4000}])
        (first,) = wait_sendmsgs(standin, call_id, 1)
        assert app_of(first) == ("answer", None)
        assert first.headers["event-lock"] == "true"
        time.sleep(0.3)
        assert len(sendmsgs(standin, call_id)) == 1, "the next command waits for completion"
        standin.release(first.headers["event-uuid"])
        second = wait_sendmsgs(standin, call_id, 2)[1]
        assert app_of(second) == ("playback", "ivr/welcome.wav")
        standin.release(second.headers["event-uuid"])
        third = wait_sendmsgs(standin, call_id, 3)[2]
        assert app_of(third) == ("playback", "tone_stream://%(2000,4000,440,480)")
        standin.release(third.headers["event-uuid"])
        events = sink.drain(6)
    finally:
        sink.close()
        standin.hold_completions = False
    completes = [e for e in events if e["Event-Name"] == "CHANNEL_EXECUTE_COMPLETE"]
    assert [e["Application-Name"] for e in completes] == ["answer", "play", "tones"]
    assert completes[0]["Msg-Reply-ID"] == answer
    assert completes[1]["Application-Response"] == "FILE PLAYED"
    assert completes[2]["Msg-Reply-ID"] == play2


def test_insert_at_now_head_and_flush(bridge: dict, standin: EslStandIn, fixtures_dir: Path,
                                      realm: str, stub: RouteStub, whapp: Whapp) -> None:
    standin.hold_completions = True
    call_id, queue = park_call(bridge, fixtures_dir, realm, stub, whapp)
    try:
        whapp.command(queue, call_id, "play", **{"Media-Name": "a.wav"})
        (running,) = wait_sendmsgs(standin, call_id, 1)
        whapp.command(queue, call_id, "play", **{"Media-Name": "b.wav"})
        whapp.command(queue, call_id, "play", **{"Media-Name": "c.wav", "Insert-At": "head"})
        # `now` runs at once, beside the running command
        whapp.command(queue, call_id, "play", **{"Media-Name": "now.wav", "Insert-At": "now"})
        assert app_of(wait_sendmsgs(standin, call_id, 2)[1]) == ("playback", "now.wav")
        standin.release(running.headers["event-uuid"])
        # head went before b
        assert app_of(wait_sendmsgs(standin, call_id, 3)[2]) == ("playback", "c.wav")
        # flush empties the queue (b.wav) and queues d
        whapp.command(queue, call_id, "play", **{"Media-Name": "d.wav", "Insert-At": "flush"})
        time.sleep(0.3)
        standin.release()
        fourth = wait_sendmsgs(standin, call_id, 4)[3]
        assert app_of(fourth) == ("playback", "d.wav")
        standin.release()
        time.sleep(0.5)
        played = [app_of(c)[1] for c in sendmsgs(standin, call_id)]
        assert played == ["a.wav", "now.wav", "c.wav", "d.wav"], played
    finally:
        standin.hold_completions = False
        standin.release()


def test_failed_command_gives_error_event_and_queue_moves_on(
        bridge: dict, standin: EslStandIn, fixtures_dir: Path, realm: str, stub: RouteStub,
        whapp: Whapp) -> None:
    standin.auto_complete = True
    call_id, queue = park_call(bridge, fixtures_dir, realm, stub, whapp)
    sink = EventSink(call_event_key("*", call_id))
    try:
        bad = whapp.command(queue, call_id, "bridge", Endpoints=[
            {"Invite-Format": "route", "Route": "ftp://not-sip.example.com"}])
        good = whapp.command(queue, call_id, "play", **{"Media-Name": "after.wav"})
        wait_sendmsgs(standin, call_id, 1)
        events = sink.drain(3)
        # FreeSWITCH refusing a command (sendmsg -ERR) is an error too
        standin.sendmsg_reply = "-ERR no such channel"
        refused = whapp.command(queue, call_id, "answer")
        support.wait_until(lambda: any(e.get("Msg-Reply-ID") == refused
                                       for e in sink.drain(len(events) + 1, timeout=1)),
                           timeout=10, what="error for the refused sendmsg")
    finally:
        standin.sendmsg_reply = "+OK"
        standin.auto_complete = False
        sink.close()
    errors = {e["Msg-Reply-ID"]: e for e in sink.messages if e["Event-Category"] == "error"}
    assert "ftp://" in errors[bad]["Error-Message"]
    assert errors[bad]["Event-Name"] == "dialplan"
    assert "-ERR no such channel" in errors[refused]["Error-Message"]
    assert [app_of(c) for c in sendmsgs(standin, call_id)][:1] == [("playback", "after.wav")]
    assert any(e.get("Msg-Reply-ID") == good and e["Event-Name"] == "CHANNEL_EXECUTE_COMPLETE"
               for e in sink.messages)


def test_after_hangup_nothing_runs(bridge: dict, standin: EslStandIn, fixtures_dir: Path,
                                   realm: str, stub: RouteStub, whapp: Whapp) -> None:
    call_id, queue = park_call(bridge, fixtures_dir, realm, stub, whapp)
    sink = EventSink(call_event_key("*", call_id))
    try:
        standin.send_event("CHANNEL_HANGUP", [("Unique-ID", call_id),
                                              ("Hangup-Cause", "NORMAL_CLEARING")])
        sink.drain(1)
        late = whapp.command(queue, call_id, "play", **{"Media-Name": "late.wav"})
        support.wait_until(lambda: any(e.get("Msg-Reply-ID") == late
                                       for e in sink.drain(2, timeout=1)),
                           timeout=10, what="error for a command after hangup")
    finally:
        sink.close()
    assert sendmsgs(standin, call_id) == []
    (error,) = [e for e in sink.messages if e.get("Msg-Reply-ID") == late]
    assert "only store runs after the hangup" in error["Error-Message"]


def test_originate(bridge: dict, standin: EslStandIn, whapp: Whapp) -> None:
    standin.heartbeat(Session_Count="3", Max_Sessions="100")
    request = schemas.build("originate_req", {
        "Application-Name": "park", "Server-ID": whapp.server_id, "Msg-ID": "orig-1",
        "Endpoints": [{"Invite-Format": "route", "Route": "sip:1001@192.0.2.9:5060",
                       "Caller-ID-Name": "Whistle"}], "Timeout": 20,
        "Custom-Channel-Vars": {"Campaign": "c1"}}, **{"App-Name": "test"})
    whapp.publisher.send(contracts.ORIGINATE, request)
    answer = whapp.wait("originate_resp")
    assert answer["Msg-ID"] == "orig-1"
    (bgapi,) = [c for c in standin.commands if c.verb == "bgapi"]
    job = bgapi.headers["job-uuid"]
    assert job and bgapi.args.startswith("originate {")
    assert "origination_uuid=" in bgapi.args and "ecallmgr_Campaign=c1" in bgapi.args
    assert bgapi.args.endswith("sofia/internal/sip:1001@192.0.2.9:5060 &park()")
    assert answer["Control-Queue"].startswith("callctl.")
    schemas.validate(answer)
    # the new call is under control: a command reaches FreeSWITCH for it
    whapp.command(answer["Control-Queue"], answer["Call-ID"], "answer")
    wait_sendmsgs(standin, answer["Call-ID"], 1)


def test_originate_error_carries_the_reason(bridge: dict, standin: EslStandIn,
                                            whapp: Whapp) -> None:
    standin.bgapi_results = {"originate": "-ERR USER_BUSY\n"}
    try:
        request = schemas.build("originate_req", {
            "Application-Name": "park", "Server-ID": whapp.server_id,
            "Endpoints": [{"Invite-Format": "route", "Route": "sip:busy@192.0.2.9"}]},
            **{"App-Name": "test"})
        whapp.publisher.send(contracts.ORIGINATE, request)
        error = whapp.wait("originate_error")
    finally:
        standin.bgapi_results = {}
    assert error["Failure-Message"] == "USER_BUSY"
    bad = {"Event-Category": "resource", "Event-Name": "originate_req", "App-Name": "t",
           "App-Version": "1", "Msg-ID": "bad-orig", "Server-ID": whapp.server_id,
           "Application-Name": "dance", "Endpoints": []}
    whapp.publisher.send(contracts.ORIGINATE, bad)
    error = whapp.wait("originate_error")
    assert error["Msg-ID"] == "bad-orig" and "Application-Name" in error["Failure-Message"]


def test_whapp_api_drives_a_call(bridge: dict, standin: EslStandIn, fixtures_dir: Path,
                                 realm: str, stub: RouteStub) -> None:
    """The Call object of whistle_tasks.whapps.callflow, used from a gevent process: every method
    is one command and returns when *its* completion (Msg-Reply-ID) comes back."""
    script = support.ROOT / "tests" / "drive_call.py"
    standin.auto_complete = True
    standin.app_responses = {"play_and_get_digits": "", "playback": "FILE PLAYED"}
    standin.app_variables = {"play_and_get_digits": {"variable_collected_digits": "42"},
                             "bridge": {"variable_originate_disposition": "SUCCESS"}}
    done = threading.Event()
    result: dict[str, Any] = {}

    def run_whapp() -> None:
        import subprocess

        server_id = f"test-api-{uuid.uuid4().hex[:8]}"
        result["server_id"] = server_id
        proc = subprocess.run([str(support.VENV_BIN / "python"), str(script), server_id],
                              capture_output=True, text=True, timeout=60)
        result["out"], result["err"] = proc.stdout, proc.stderr
        done.set()

    try:
        thread = threading.Thread(target=run_whapp, daemon=True)
        thread.start()
        support.wait_until(lambda: "server_id" in result, timeout=5)
        time.sleep(2)  # the script subscribes its route_win queue
        stub.answers["7100"] = {"Method": "park", "Server-ID": result["server_id"]}
        call_id = str(uuid.uuid4())
        xmlcurl.post(bridge["port"], "/fs/dialplan", dialplan_body(
            fixtures_dir, realm, "7100", {"Unique-ID": call_id, "Channel-Call-UUID": call_id}))
        assert done.wait(60), "the whapp script did not finish"
    finally:
        standin.auto_complete = False
        standin.app_variables = {}
        standin.app_responses = {}
    assert "digits=42" in result["out"], result["err"][-2000:]
    assert "bridge=SUCCESS" in result["out"], result["err"][-3000:]
    apps = [app_of(c)[0] for c in sendmsgs(standin, call_id)]
    assert apps == ["answer", "playback", "play_and_get_digits", "set", "bridge", "hangup"], apps
