"""The ESL stand-in is only useful if it behaves like FreeSWITCH at the wire: check that.

A plain blocking socket is the client here (no gevent), as a non-gevent test would use it.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from switch_bridge.freeswitch.esl import protocol as P
from tests.esl_standin import (
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
