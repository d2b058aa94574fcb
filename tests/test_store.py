"""The ``store`` command: a recording made on a node is PUT to a URL by mod_http_cache's
``http_put``, as an API command that also runs after the caller hung up.

First the FreeSWITCH steps (switch_bridge.freeswitch.commands), then the bridge's call
control with the ESL stand-in: store after a hangup, while the record before it runs, its
success and failure answers."""

from __future__ import annotations

import pytest

import schemas
from switch_bridge.freeswitch import commands


def store(**fields):
    return schemas.build("store", {"Call-ID": "c-1", "Media-Name": "recording://vm-1.wav",
                                   "Media-Transfer-Destination": "http://m:8095/media/t/a.wav",
                                   **fields})


def test_store_is_one_api_step_with_the_recording_in_the_record_dir():
    assert commands.steps(store(), profile="p", record_dir="/var/spool/rec/") == [
        (commands.API, "http_put http://m:8095/media/t/a.wav /var/spool/rec/vm-1.wav")]


def test_a_recording_goes_to_the_record_dir_and_other_names_stay():
    rec = schemas.build("record", {"Call-ID": "c", "Media-Name": "recording://vm-1.wav",
                                   "Time-Limit": 60})
    assert commands.steps(rec, profile="p", record_dir="/rec") == [
        ("record", "/rec/vm-1.wav 60 500 5")]
    for name in ("/elsewhere/x.wav", "prompt-1.wav"):   # as FreeSWITCH reads them
        rec["Media-Name"] = name
        assert commands.steps(rec, profile="p", record_dir="/rec")[0][1].startswith(name)
    rec["Media-Name"] = "recording://../x.wav"
    with pytest.raises(commands.CommandError):
        commands.steps(rec, profile="p", record_dir="/rec")


@pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", "..", "a b.wav", ".hidden",
                                  "x\n.wav"])
def test_unusable_recording_names(name):
    with pytest.raises(commands.CommandError):
        commands.recording_path(name, "/rec")


@pytest.mark.parametrize("url", ["ftp://h/x", "file:///etc/passwd", "http://h/a b",
                                 "{profile=x}http://h/"])
def test_store_needs_a_plain_http_url(url):
    with pytest.raises(commands.CommandError, match="http"):
        commands.steps(store(**{"Media-Transfer-Destination": url}), profile="p")


def test_store_quotes_for_the_api_splitter():
    step = commands.steps(store(**{"Media-Transfer-Destination": "http://h/it's"}),
                          profile="p", record_dir="/rec")
    assert step == [(commands.API, "http_put http://h/it\\'s /rec/vm-1.wav")]


@pytest.mark.parametrize(("body", "ok", "why"), [
    ("+OK 201\n", True, "HTTP 201"),
    ("+OK 204", True, "HTTP 204"),
    ("-ERR 413\n", False, "the server answered HTTP 413"),
    ("-ERR 0\n", False, "could not be read"),
    ("+OK 0\n", False, "could not be read"),
    ("USAGE: {params}<url> <file>\n", False, "unexpected answer (USAGE:)"),
    ("", False, "unexpected answer (nothing)"),
    # what a real FreeSWITCH's bgapi gives for any failure (seen on master)
    ("-ERR http_put http://m/media/SECRET-TOKEN/a.wav /tmp/a.wav Command not found!\n", False,
     "http_put failed"),
])
def test_store_result(body, ok, why):
    stored, reason = commands.store_result(body)
    assert stored is ok and why in reason
    assert "SECRET-TOKEN" not in reason


# ------------------------------------------------------------ through the bridge

import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

from schemas.keys import call_event_key  # noqa: E402
from tests import support  # noqa: E402
from tests.bridgekit import EventSink, RouteStub  # noqa: E402
from tests.esl_standin import EslStandIn  # noqa: E402
from tests.test_call_control import Whapp, app_of, park_call, wait_sendmsgs  # noqa: E402

BRIDGE_ENV = {"WHISTLE_RECORD_DIR": "/var/spool/whistle-test"}
URL = "http://media.example.com:8095/media/tok/message.wav"


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


def bgapis(standin: EslStandIn, prefix: str = "http_put") -> list:
    return [c for c in standin.commands if c.verb == "bgapi" and c.args.startswith(prefix)]


def reply_to(sink: EventSink, msg_id: str, timeout: float = 10) -> dict:
    found: list[dict] = []

    def seen() -> bool:
        sink.drain(len(sink.messages) + 1, timeout=0.5)
        found[:] = [e for e in sink.messages if e.get("Msg-Reply-ID") == msg_id]
        return bool(found)

    support.wait_until(seen, timeout=timeout, what=f"the answer to {msg_id}")
    return found[0]


@pytest.mark.usefixtures("whapp_worker")
def test_store_after_hangup_waits_for_the_record_then_uploads(
        bridge: dict, standin: EslStandIn, fixtures_dir: Path, realm: str, stub: RouteStub,
        whapp: Whapp) -> None:
    standin.hold_completions = True
    standin.bgapi_results = {"http_put": "+OK 201\n"}
    call_id, queue = park_call(bridge, fixtures_dir, realm, stub, whapp)
    sink = EventSink(call_event_key("*", call_id))
    bare = f"vm-{uuid.uuid4().hex[:8]}.wav"
    name = f"recording://{bare}"
    try:
        whapp.command(queue, call_id, "record", **{"Media-Name": name, "Time-Limit": 120})
        (record,) = wait_sendmsgs(standin, call_id, 1)
        assert app_of(record) == ("record", f"/var/spool/whistle-test/{bare} 120 500 5")
        # the caller hangs up while recording; the whapp asks for the upload at once
        standin.send_event("CHANNEL_HANGUP", [("Unique-ID", call_id),
                                              ("Hangup-Cause", "NORMAL_CLEARING")])
        stored = whapp.command(queue, call_id, "store", **{
            "Media-Name": name, "Media-Transfer-Destination": URL})
        time.sleep(0.5)
        assert bgapis(standin) == [], "store waits until the record has closed its file"
        standin.send_event("CHANNEL_DESTROY", [("Unique-ID", call_id)])
        standin.release(record.headers["event-uuid"])
        answer = reply_to(sink, stored)
    finally:
        standin.hold_completions = False
        standin.bgapi_results = {}
        sink.close()
    (put,) = bgapis(standin)
    assert put.args == f"http_put {URL} /var/spool/whistle-test/{bare}"
    assert put.headers["job-uuid"]
    assert answer["Event-Name"] == "CHANNEL_EXECUTE_COMPLETE"
    assert answer["Application-Name"] == "store"
    assert answer["Application-Response"] == "success"
    schemas.validate(answer)


@pytest.mark.usefixtures("whapp_worker")
def test_store_failure_and_late_commands_after_the_end(
        bridge: dict, standin: EslStandIn, fixtures_dir: Path, realm: str, stub: RouteStub,
        whapp: Whapp) -> None:
    standin.bgapi_results = {"http_put": "-ERR 413\n"}
    call_id, queue = park_call(bridge, fixtures_dir, realm, stub, whapp)
    sink = EventSink(call_event_key("*", call_id))
    try:
        standin.send_event("CHANNEL_HANGUP_COMPLETE", [("Unique-ID", call_id)])
        standin.send_event("CHANNEL_DESTROY", [("Unique-ID", call_id)])
        sink.drain(2)
        # within the linger: store still runs (and fails as the server said), play does not
        refused = whapp.command(queue, call_id, "store", **{
            "Media-Name": "recording://vm-late.wav", "Media-Transfer-Destination": URL})
        late = whapp.command(queue, call_id, "play", **{"Media-Name": "x.wav"})
        bad = whapp.command(queue, call_id, "store", **{
            "Media-Name": "../../etc/passwd", "Media-Transfer-Destination": URL})
        failed, played, unusable = (reply_to(sink, refused), reply_to(sink, late),
                                    reply_to(sink, bad))
    finally:
        standin.bgapi_results = {}
        sink.close()
    assert failed["Event-Category"] == "error"
    assert "store failed: the server answered HTTP 413" in failed["Error-Message"]
    assert "only store runs after the hangup" in played["Error-Message"]
    assert "unusable recording name" in unusable["Error-Message"]
    assert len(bgapis(standin, "http_put http://media.example.com:8095/media/tok/message.wav "
                               "/var/spool/whistle-test/vm-late.wav")) == 1
