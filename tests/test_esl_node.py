"""switch_bridge.freeswitch.esl.node against the ESL stand-in, over real sockets.

The nodes run on gevent in this process *without* monkey-patching (the node only uses
gevent's own socket module); the stand-in runs on plain threads. Tests wait with
``gevent.sleep`` so the hub keeps serving the nodes meanwhile.
"""

from __future__ import annotations

import logging
import socket
import time

import gevent
import pytest

from switch_bridge.freeswitch.esl.node import (
    STATE_CONNECTED,
    STATE_CONNECTING,
    STATE_DOWN,
    EslCommandError,
    EslNode,
    EslNotConnected,
    EslTimeout,
)
from tests.esl_standin import EslStandIn

EVENT_NAMES = ["CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_EXECUTE",
               "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP_COMPLETE", "HEARTBEAT",
               "BACKGROUND_JOB", "CUSTOM", "sofia::register", "sofia::unregister",
               "sofia::expire"]


def wait_until(predicate, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        gevent.sleep(0.005)


@pytest.fixture
def standin():
    server = EslStandIn(sleep=gevent.sleep).start()
    yield server
    server.stop()


@pytest.fixture
def make_node():
    nodes = []

    def make(port, password="ClueCon", **kwargs):  # noqa: S107 - the stand-in's password
        events = []
        states = []
        options = {"event_names": EVENT_NAMES, "backoff_initial": 0.05, "backoff_max": 0.2,
                   "connect_timeout": 2, "heartbeat_timeout": 30}
        options.update(kwargs)
        node = EslNode("127.0.0.1", port, password,
                       on_event=lambda n, e: events.append(e),
                       on_state=lambda n, s: states.append(s), **options)
        node.received, node.states = events, states
        nodes.append(node)
        return node.start()

    yield make
    for node in nodes:
        node.stop()


# ------------------------------------------------------------------ connect and subscribe


@pytest.mark.parametrize("fmt", ["json", "plain"])
def test_connects_authenticates_and_subscribes(standin, make_node, fmt):
    node = make_node(standin.port, fmt=fmt)
    assert node.wait_connected(5)
    auth, subscribe = standin.commands[:2]
    assert auth.line == "auth ClueCon"
    assert subscribe.line == f"events {fmt} " + " ".join(EVENT_NAMES)
    assert node.state == STATE_CONNECTED and node.connected
    assert node.states == [STATE_CONNECTING, STATE_CONNECTED]
    standin.send_event("CUSTOM", {"from-user": "1000", "status": "Registered(UDP)"},
                       subclass="sofia::register")
    standin.send_event("CHANNEL_CREATE", {"Unique-ID": "u-1",
                                          "variable_sip_r_sdp": "v=0\r\no=- 1 1 IN IP4 x\r\n"})
    standin.send_event("CHANNEL_PARK", {"Unique-ID": "u-1"})  # not subscribed: not sent
    wait_until(lambda: len(node.received) == 2, what="two events")
    register, create = node.received
    assert (register.name, register.subclass, register.get("from-user")) == (
        "CUSTOM", "sofia::register", "1000")
    assert create.uuid == "u-1" and create.get("variable_sip_r_sdp").endswith("x\r\n")
    assert node.events == 2 and node.fs_hostname == "standin"


def test_bad_password_is_refused_logged_without_it_and_retried(standin, make_node, caplog):
    caplog.set_level(logging.DEBUG)
    node = make_node(standin.port, password="Not-The-Pw-7731")
    wait_until(lambda: standin.auth_failures >= 2, what="two refused attempts")
    assert not node.connected and node.state != STATE_CONNECTED
    assert node.auth_failures >= 2
    assert "-ERR invalid" in node.last_error
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("switch_bridge")]
    assert any("password refused" in m for m in messages)
    assert not any("Not-The-Pw-7731" in m for m in messages)
    assert "Not-The-Pw-7731" not in repr(node) and "Not-The-Pw-7731" not in str(node.stats())


def test_acl_rejection(standin, make_node):
    standin.rude = True
    node = make_node(standin.port)
    wait_until(lambda: node.auth_failures >= 1, what="rude rejection seen")
    assert "ACL" in node.last_error and not node.connected


# ------------------------------------------------------------------ events


@pytest.mark.parametrize("fmt", ["json", "plain"])
def test_replayed_capture_arrives_whole_and_in_order(standin, make_node, fixtures_dir, fmt):
    node = make_node(standin.port, fmt=fmt, event_names=["ALL"])
    assert node.wait_connected(5)
    path = fixtures_dir / "modern" / "d_call_1001_bridge" / f"esl_d_{fmt}.txt"
    assert standin.replay(path, split=True, seed=7, max_chunk=900, pause=0) == 57
    wait_until(lambda: len(node.received) == 57, what="57 events")
    sequences = [e.get("Event-Sequence") for e in node.received]
    assert sequences[:3] == ["490", "492", "493"] and sequences[-1] == "552"
    assert "536" in sequences[sequences.index("538"):]  # delivery order, not sequence order
    assert node.frame_errors == 0 and node.event_errors == 0


def test_heartbeat_is_kept(standin, make_node):
    node = make_node(standin.port)
    assert node.wait_connected(5)
    standin.heartbeat(Session_Count="7", Max_Sessions="500", Idle_CPU="42.000000")
    wait_until(lambda: node.last_heartbeat, what="heartbeat")
    assert node.last_heartbeat["Session-Count"] == "7"
    assert node.last_heartbeat["Max-Sessions"] == "500"
    assert node.last_heartbeat["Idle-CPU"] == "42.000000"
    assert node.last_heartbeat_at is not None
    assert (node.sessions, node.max_sessions) == (7, 500)


def test_broken_frames_and_failing_callback_do_not_stop_events(standin, make_node):
    node = make_node(standin.port)
    assert node.wait_connected(5)
    standin.send_raw(b"this is not ESL\n\n"
                     b"Content-Type: text/event-json\nContent-Length: 5\n\n{bad}")
    standin.send_event("CHANNEL_CREATE", {"Unique-ID": "after-junk"})
    wait_until(lambda: node.received, what="event after junk")
    assert node.received[0].uuid == "after-junk"
    assert node.frame_errors == 1 and node.event_errors == 1

    def explode(n, e):
        raise RuntimeError("consumer bug")

    node.on_event = explode
    standin.send_event("CHANNEL_CREATE", {"Unique-ID": "boom"})
    wait_until(lambda: node.callback_errors == 1, what="callback error counted")
    assert node.connected and node.connects == 1


# ------------------------------------------------------------------ commands


def test_api_bgapi_and_sendmsg(standin, make_node):
    node = make_node(standin.port)
    assert node.wait_connected(5)
    standin.api_responses["uuid_kill 0000"] = "-ERR No such channel!\n"
    standin.api_responses["status"] = lambda cmd: "UP 0 years\n"
    assert node.api("status") == "UP 0 years\n"
    assert node.api("uuid_kill 0000-1") == "-ERR No such channel!\n"
    assert node.api("hostname") == "standin"  # the stand-in answers as FreeSWITCH does
    assert node.api("fsctl loglevel 7") == "+OK\n"  # anything else: api_default

    standin.bgapi_results["originate"] = "-ERR USER_BUSY\n"
    job = node.bgapi("originate user/1000 &park()", job_uuid="c0ffee00-job")
    assert job == "c0ffee00-job"
    sent = standin.wait_for_command("bgapi")
    assert sent.headers["job-uuid"] == "c0ffee00-job"
    wait_until(lambda: any(e.name == "BACKGROUND_JOB" for e in node.received), what="job")
    result = next(e for e in node.received if e.name == "BACKGROUND_JOB")
    assert result.get("Job-UUID") == "c0ffee00-job" and result.body == "-ERR USER_BUSY\n"
    assert result.get("Job-Command") == "originate"
    assert len(node.bgapi("status")) == 36  # a Job-UUID chosen by us

    standin.auto_complete = True
    standin.app_responses["playback"] = "FILE PLAYED"
    reply = node.sendmsg("u-1", "playback", "tone_stream://%(200,0,440)", event_uuid="app-1",
                         event_lock=True, loops=2)
    assert reply == "+OK"
    msg = standin.wait_for_command("sendmsg")
    assert msg.line == "sendmsg u-1"
    assert {k: msg.headers[k] for k in ("call-command", "execute-app-name", "execute-app-arg",
                                        "event-uuid", "event-lock", "loops")} == {
        "call-command": "execute", "execute-app-name": "playback",
        "execute-app-arg": "tone_stream://%(200,0,440)", "event-uuid": "app-1",
        "event-lock": "true", "loops": "2"}
    wait_until(lambda: any(e.name == "CHANNEL_EXECUTE_COMPLETE" for e in node.received),
               what="execute complete")
    execute, complete = (e for e in node.received if e.name.startswith("CHANNEL_EXECUTE"))
    assert execute.name == "CHANNEL_EXECUTE"
    assert complete.get("Application-UUID") == "app-1" and complete.uuid == "u-1"
    assert complete.get("Application-Data") == "tone_stream://%(200,0,440)"
    assert complete.get("Application-Response") == "FILE PLAYED"


def test_sendmsg_with_a_multiline_argument_and_held_completion(standin, make_node):
    node = make_node(standin.port)
    assert node.wait_connected(5)
    standin.hold_completions = True
    text = "first line\nexecute-app-name: system\n\napi shutdown"
    assert node.sendmsg("u-2", "speak", text, event_uuid="app-2") == "+OK"
    msg = standin.wait_for_command("sendmsg")
    assert msg.app_arg == text and "execute-app-arg" not in msg.headers
    assert [c.verb for c in standin.commands] == ["auth", "events", "sendmsg"]  # no injection
    wait_until(lambda: standin.held == ["app-2"], what="held completion")
    gevent.sleep(0.05)
    assert not any(e.name == "CHANNEL_EXECUTE_COMPLETE" for e in node.received)
    assert standin.release("app-2") == 1
    wait_until(lambda: any(e.name == "CHANNEL_EXECUTE_COMPLETE" for e in node.received),
               what="released completion")
    complete = next(e for e in node.received if e.name == "CHANNEL_EXECUTE_COMPLETE")
    assert complete.get("Application-Data") == text


def test_refusals(standin, make_node):
    node = make_node(standin.port)
    assert node.wait_connected(5)
    standin.sendmsg_reply = "-ERR invalid session id [u-x]"
    assert node.sendmsg("u-x", "park") == "-ERR invalid session id [u-x]"
    standin.bgapi_refusal = "-ERR no keywords supplied"
    with pytest.raises(EslCommandError, match="no keywords"):
        node.bgapi("originate")
    with pytest.raises(ValueError):
        node.api("status\n\nexit")  # refused before anything is written
    assert [c.verb for c in standin.commands] == ["auth", "events", "sendmsg", "bgapi"]
    assert node.connected and "is ready" in node.api("status")


def test_concurrent_commands_get_their_own_replies(standin, make_node):
    node = make_node(standin.port)
    assert node.wait_connected(5)
    standin.api_responses["echo"] = lambda cmd: f"{cmd}\n"
    calls = [gevent.spawn(node.api, f"echo {i}") for i in range(100)]
    gevent.joinall(calls, timeout=10, raise_error=True)
    assert [c.value for c in calls] == [f"echo {i}\n" for i in range(100)]


def test_late_reply_goes_to_the_caller_that_gave_up(standin, make_node):
    node = make_node(standin.port)
    assert node.wait_connected(5)
    standin.api_delay = 0.3  # FreeSWITCH runs api commands one after the other
    standin.api_responses["first"] = "one\n"
    standin.api_responses["second"] = "two\n"
    with pytest.raises(EslTimeout):
        node.api("first", timeout=0.1)
    assert node.api("second", timeout=3) == "two\n"
    assert node.connected and node.stray_replies == 0


def test_waiters_fail_at_once_when_the_connection_drops(standin, make_node):
    node = make_node(standin.port, backoff_initial=1, backoff_max=1)
    assert node.wait_connected(5)
    standin.silent = True  # swallow the command: nobody will answer
    pending = [gevent.spawn(node.api, "status", timeout=30) for _ in range(3)]
    gevent.sleep(0.1)
    started = time.monotonic()
    standin.silent = False
    standin.drop()
    gevent.joinall(pending, timeout=5)
    assert time.monotonic() - started < 1
    assert all(isinstance(g.exception, EslNotConnected) for g in pending)
    wait_until(lambda: not node.connected, what="node down")
    started = time.monotonic()
    with pytest.raises(EslNotConnected):
        node.api("status")
    with pytest.raises(EslNotConnected):
        node.bgapi("status")
    assert time.monotonic() - started < 0.05


def test_stop_fails_pending_commands(standin, make_node):
    node = make_node(standin.port)
    assert node.wait_connected(5)
    standin.silent = True
    pending = gevent.spawn(node.api, "status", timeout=30)
    gevent.sleep(0.05)
    node.stop()
    pending.join(timeout=2)
    assert isinstance(pending.exception, EslNotConnected)
    assert node.state == STATE_DOWN and not node.connected


# ------------------------------------------------------------------ reconnection


def test_reconnects_after_a_drop(standin, make_node):
    node = make_node(standin.port)
    assert node.wait_connected(5)
    standin.drop()
    wait_until(lambda: standin.authenticated == 2 and node.connected, what="reconnected")
    assert node.reconnects == 1 and node.connects == 2
    assert node.states == [STATE_CONNECTING, STATE_CONNECTED, STATE_DOWN, STATE_CONNECTED]
    assert [c.line.split(" ")[0] for c in standin.commands] == ["auth", "events"] * 2
    standin.send_event("CHANNEL_CREATE", {"Unique-ID": "after-reconnect"})
    wait_until(lambda: node.received, what="event after reconnect")


def test_disconnect_notice_ends_the_session(standin, make_node):
    node = make_node(standin.port)
    assert node.wait_connected(5)
    standin.disconnect()
    wait_until(lambda: node.connects == 2, what="reconnected after notice")
    assert "disconnect-notice" in node.last_error


class MaxRandom:
    """Full jitter made visible: records each cap, always waits the longest."""

    def __init__(self):
        self.caps = []

    def uniform(self, low, high):
        assert low == 0
        self.caps.append(high)
        return high


def test_backoff_grows_exponentially_up_to_the_cap(make_node):
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rng = MaxRandom()
    node = make_node(port, backoff_initial=0.01, backoff_max=0.08, rng=rng)
    wait_until(lambda: len(rng.caps) >= 6, what="six retries")
    assert rng.caps[:6] == [0.01, 0.02, 0.04, 0.08, 0.08, 0.08]
    assert not node.connected and "refused" in node.last_error.lower()


def test_backoff_starts_over_after_a_good_session(standin, make_node):
    rng = MaxRandom()
    node = make_node(standin.port, backoff_initial=0.01, backoff_max=1, rng=rng)
    assert node.wait_connected(5)
    for expected_connects in (2, 3):
        standin.drop()
        wait_until(lambda n=expected_connects: node.connects == n, what="reconnect")
    assert rng.caps == [0.01, 0.01]


def test_a_node_that_was_healthy_is_retried_within_a_few_seconds(make_node):
    """After a FreeSWITCH restart the bridge must be back within seconds (issue #9: it
    was in a 26 s back-off and missed every REGISTER of the first 19 s)."""
    server = EslStandIn(sleep=gevent.sleep).start()
    port = server.port
    rng = MaxRandom()
    node = make_node(port, backoff_initial=0.01, backoff_max=10, backoff_max_healthy=0.04,
                     rng=rng)
    assert node.wait_connected(5)
    server.stop()  # FreeSWITCH goes away: every retry is refused
    wait_until(lambda: len(rng.caps) >= 6, what="six retries")
    assert rng.caps[:6] == [0.01, 0.02, 0.04, 0.04, 0.04, 0.04]
    # a node that never answered backs off to backoff_max instead
    assert [EslNode("127.0.0.1", 1, "pw", on_event=lambda n, e: None, event_names=["HEARTBEAT"],
                    backoff_initial=1, backoff_max=30, backoff_max_healthy=4,
                    rng=MaxRandom()).retry_delay(n) for n in range(7)] == \
        [1, 2, 4, 8, 16, 30, 30]
    back = EslStandIn(sleep=gevent.sleep, port=port).start()
    try:
        wait_until(lambda: node.connected, what="back once FreeSWITCH is")
    finally:
        back.stop()


def test_one_log_line_per_state_change_not_per_attempt(make_node, caplog):
    caplog.set_level(logging.DEBUG, logger="switch_bridge.freeswitch.esl.node")
    with socket.socket() as probe:  # nobody listening yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    node = make_node(port, backoff_initial=0.005, backoff_max=0.01)
    wait_until(lambda: node.reconnects >= 10, what="ten refused attempts")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.name == "switch_bridge.freeswitch.esl.node" and r.levelno >= logging.INFO]

    assert len(lines()) == 1 and "down: " in lines()[0] and "refused" in lines()[0].lower()
    assert node.states == [STATE_CONNECTING, STATE_DOWN]
    server = EslStandIn(sleep=gevent.sleep, port=port).start()
    try:
        wait_until(lambda: node.connected, what="connected")
        assert len(lines()) == 2 and "connected" in lines()[1]
        server.drop()
        wait_until(lambda: node.connects == 2, what="reconnected")
        assert [line.split(": ")[1] for line in lines()[2:]] == ["down", "connected (json "
                                                                  "events subscribed)"]
        assert node.states == [STATE_CONNECTING, STATE_DOWN, STATE_CONNECTED, STATE_DOWN,
                               STATE_CONNECTED]
    finally:
        server.stop()


def test_silence_is_detected_by_the_heartbeat_timeout(standin, make_node):
    node = make_node(standin.port, heartbeat_timeout=0.6, connect_timeout=0.5)
    assert node.wait_connected(5)
    for _ in range(6):  # heartbeats keep a quiet node alive
        standin.heartbeat()
        gevent.sleep(0.2)
    assert node.connects == 1 and node.connected
    standin.silent = True  # FreeSWITCH hangs: the TCP connection stays up
    started = time.monotonic()
    wait_until(lambda: not node.connected, timeout=3, what="silence detected")
    assert 0.4 < time.monotonic() - started < 1.5
    assert "no frame for 0.6s" in node.stats()["last_error"] or node.state != STATE_CONNECTED
    standin.silent = False
    wait_until(lambda: node.connected, timeout=5, what="back after silence")
    assert node.connects == 2


def test_a_dead_node_does_not_delay_a_live_one(standin, make_node):
    hung = EslStandIn(sleep=gevent.sleep).start()
    hung.silent = True  # accepts, then never says a word (not even auth/request)
    try:
        stuck = make_node(hung.port, connect_timeout=10)
        live = make_node(standin.port)
        assert live.wait_connected(5)
        for i in range(20):
            sent = time.monotonic()
            standin.send_event("CHANNEL_CREATE", {"Unique-ID": f"u-{i}"})
            wait_until(lambda n=i + 1: len(live.received) == n, timeout=1, what="live event")
            assert time.monotonic() - sent < 0.2
            assert live.api("version", timeout=1) == "+OK\n"
        assert stuck.state == STATE_CONNECTING and not stuck.connected
        with pytest.raises(EslNotConnected):
            stuck.api("status")
    finally:
        hung.stop()
