"""The ESL stand-in is only useful if it behaves like FreeSWITCH at the wire: check that.

A plain blocking socket is the client here (no gevent), as a non-gevent test would use it.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from switch_bridge.freeswitch.esl import protocol as P
from tests.esl_standin import (
    Channel,
    EslStandIn,
    encode_event_json,
    encode_event_plain,
    fs_url_encode,
    load_capture_events,
)

CASES = ["a_register_unregister", "b_register_expire", "c_call_2000_tone_park",
         "d_call_1001_bridge", "e_call_9999_busy", "f_esl_bgapi_sendmsg"]


class Client:
    """A minimal blocking ESL client."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.parser = P.FrameParser()
        self.frames: list[P.Frame] = []

    def next(self) -> P.Frame:
        while not self.frames:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("closed")
            self.frames += self.parser.feed(data)
        return self.frames.pop(0)

    def send(self, data: bytes) -> P.Frame:
        self.sock.sendall(data)
        return self.next()

    def login(self, events: str = "ALL", fmt: str = "plain") -> None:
        assert self.next().content_type == "auth/request"
        assert self.send(P.auth("ClueCon")).get("Reply-Text") == "+OK accepted"
        assert self.send(P.events(fmt, events.split())).get("Reply-Text") == \
            f"+OK event listener enabled {fmt}"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def standin():
    server = EslStandIn().start()
    yield server
    server.stop()


def capture(fixtures_dir: Path, case: str, fmt: str) -> Path:
    return fixtures_dir / "modern" / case / f"esl_{case[0]}_{fmt}.txt"


def test_encoders_reproduce_freeswitch_bytes(fixtures_dir):
    for case in CASES:
        for fmt, encode in (("plain", encode_event_plain), ("json", encode_event_json)):
            for frame in load_capture_events(capture(fixtures_dir, case, fmt)):
                event = P.parse_event(frame)
                pairs = [(n, v[7:].split("|:") if v.startswith("ARRAY::") else v)
                         for n, v in event.items() if n != "Content-Length"]
                assert encode(pairs, event.body or None) == frame.to_bytes(), (case, event)


def test_freeswitch_url_encoding():
    assert fs_url_encode("a b.c-d_e/f,g(h)i~j*k") == "a%20b.c-d_e/f,g(h)i~j*k"
    assert fs_url_encode("+1:2;3=4&5%\r\n") == "%2B1%3A2%3B3%3D4%265%25%0D%0A"


def test_auth_commands_and_exit(standin):
    client = Client(standin.port)
    client.login(fmt="json")
    standin.api_responses["status"] = "UP\n"
    assert client.send(P.api("status")).body == b"UP\n"
    assert client.send(P.api("version")).body == b"+OK\n"
    reply = client.send(P.bgapi("originate x", "job-1"))
    assert (reply.get("Reply-Text"), reply.get("Job-UUID")) == ("+OK Job-UUID: job-1", "job-1")
    job = P.parse_event(client.next())
    assert (job.name, job.get("Job-UUID"), job.body[:4]) == ("BACKGROUND_JOB", "job-1", "+OK ")
    assert client.send(b"bogus\n\n").get("Reply-Text") == "-ERR command not found"
    assert client.send(P.exit_()).get("Reply-Text") == "+OK bye"
    assert client.next().content_type == "text/disconnect-notice"
    with pytest.raises(EOFError):
        client.next()
    assert [c.verb for c in standin.commands] == ["auth", "events", "api", "api", "bgapi",
                                                  "bogus", "exit"]
    client.close()


def test_wrong_password_closes(standin):
    client = Client(standin.port)
    assert client.next().content_type == "auth/request"
    assert client.send(P.auth("nope")).get("Reply-Text") == "-ERR invalid"
    with pytest.raises(EOFError):
        client.next()
    assert standin.auth_failures == 1 and standin.authenticated == 0
    client.close()


def test_only_subscribed_events_are_sent(standin):
    client = Client(standin.port)
    client.login(events="CHANNEL_CREATE CUSTOM sofia::register")
    standin.send_event("CHANNEL_ANSWER")
    standin.send_event("CUSTOM", subclass="sofia::unregister")
    standin.send_event("CUSTOM", {"from-user": "1000"}, subclass="sofia::register")
    standin.send_event("CHANNEL_CREATE", {"Unique-ID": "u"})
    got = [P.parse_event(client.next()) for _ in range(2)]
    assert [(e.name, e.subclass) for e in got] == [("CUSTOM", "sofia::register"),
                                                   ("CHANNEL_CREATE", None)]
    assert int(got[1]["Event-Sequence"]) > int(got[0]["Event-Sequence"])
    client.close()


@pytest.mark.parametrize("split", [False, True])
def test_replay_sends_the_capture_events_unchanged(standin, fixtures_dir, split):
    client = Client(standin.port)
    client.login()
    path = capture(fixtures_dir, "f_esl_bgapi_sendmsg", "plain")
    expected = load_capture_events(path)
    assert standin.replay(path, split=split, seed=3, max_chunk=700, pause=0) == 90
    got = [client.next() for _ in range(90)]
    assert [f.to_bytes() for f in got] == [f.to_bytes() for f in expected]
    client.close()


def test_silence_drop_and_raw_bytes(standin):
    client = Client(standin.port)
    client.login()
    standin.silent = True
    standin.heartbeat()
    standin.silent = False
    standin.send_raw(b"Content-Type: text/x-test\n\n")
    assert client.next().content_type == "text/x-test"  # the heartbeat was never written
    standin.drop()
    with pytest.raises(EOFError):
        client.next()
    client.close()


NODESYNC = Path(__file__).resolve().parent / "fixtures" / "freeswitch" / "nodesync"


def _captured(name: str) -> str:
    (frame,) = P.FrameParser().feed((NODESYNC / f"api_{name}.frame").read_bytes())
    return frame.body_text


def _api(client: Client, command: str) -> str:
    frame = client.send(P.api(command))
    assert frame.content_type == "api/response"
    return frame.body_text


def test_what_a_node_holds_is_answered_as_freeswitch_writes_it(standin):
    """The stand-in's answers to the node-sync commands have the captured bytes, but for
    what differs between two runs (times, ports, ids)."""
    import re

    standin.hostname, standin.profiles = "vm", ["whistle"]
    standin.registrations.clear()
    standin.channels.clear()
    for port, call_id, user in ((38525, "1-15375@127.0.0.1", "1000"),
                                (51079, "1-15376@127.0.0.1", "1000"),
                                (46963, "1-15377@127.0.0.1", "1001")):
        standin.register(user, "capture.example.com",
                         f'"" <sip:{user}@127.0.0.1:{port};transport=UDP>', 298.5,
                         call_id=call_id, agent="whistle-test", network_port=port,
                         profile="whistle")
    client = Client(standin.port)
    try:
        client.login("HEARTBEAT")

        def same(text: str) -> str:
            text = re.sub(r"exp\([^)]*\) expsecs\(\d+\)", "exp(T) expsecs(N)", text)
            return re.sub(r"mod_sofia@127\.0\.0\.1:\d+", "mod_sofia@H", text)

        assert same(_api(client, "sofia xmlstatus profile whistle reg")) == \
            same(_captured("sofia_xmlstatus_profile_whistle_reg"))
        assert same(_api(client, "sofia xmlstatus")) == same(_captured("sofia_xmlstatus"))
        assert _api(client, "hostname") == _captured("hostname")
        assert _api(client, "strmicroepoch").isdigit()
        assert _api(client, "show channels as json") == _captured("show_channels_as_json_idle")
        assert _api(client, "status").splitlines()[3:6] == \
            _captured("status_idle").splitlines()[3:6]
        # a channel: the captured row's keys, its variables
        standin.channels["u-1"] = Channel("u-1", variables={
            "whistle_control_queue": "callctl.u-1.ab"})
        row = json.loads(_api(client, "show channels as json"))["rows"][0]
        captured = json.loads(_captured("show_channels_as_json_one_call"))
        assert set(row) <= set(captured["rows"][0])
        assert _api(client, "uuid_getvar u-1 whistle_control_queue") == "callctl.u-1.ab"
        assert _api(client, "uuid_getvar u-1 nothing") == _captured("uuid_getvar_unset")
        assert _api(client, "uuid_getvar u-2 x") == _captured("uuid_getvar_no_channel")
        assert _api(client, "status").splitlines()[3] == \
            _captured("status_one_call").splitlines()[3]
        assert _api(client, "xml_flush_cache id 1000 capture.example.com") == \
            _captured("xml_flush_cache_user_none")
        assert standin.flushed == ["id 1000 capture.example.com"]
    finally:
        client.sock.close()
