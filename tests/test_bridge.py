"""The switch bridge end to end, FreeSWITCH replaced only at its wires.

A real bridge process (``python -m switch_bridge``) talks to the ESL stand-in (real ESL
framing, real captured event streams) and is posted real mod_xml_curl bodies, through real
RabbitMQ, Redis, pouchdb-server and the registrar worker. Route requests are answered by a
route stub of the test's own (the router whapp has its own tests), so every dialplan
outcome can be chosen.
"""

from __future__ import annotations

import socket
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import schemas
from switch_bridge.freeswitch import translate as fs_events
from switch_bridge.freeswitch.esl.protocol import parse_event
from tests import support, xmlcurl
from tests.bridgekit import (
    EventSink,
    RouteStub,
    actions,
    dialplan_body,
    directory_user,
    free_port,
    health,
    metrics,
    sip_auth_body,
)
from tests.esl_standin import EslStandIn, load_capture_events
from whistle_tasks.ops import provisioning

pytestmark = pytest.mark.usefixtures("whapp_worker")
BUDGET_MS = 700
BRIDGE_ENV = {"WHISTLE_ANSWER_BUDGET_MS": str(BUDGET_MS)}


# --- directory -----------------------------------------------------------------------------

def test_password_user_registers(bridge: dict, fixtures_dir: Path, realm: str) -> None:
    device = provisioning.create_device(realm, "1000", password="pw-1000")
    status, xml = xmlcurl.post(bridge["port"], "/fs/directory",
                               sip_auth_body(fixtures_dir, realm, "1000"))
    assert status == 200
    user = directory_user(xml)
    assert user is not None and user["id"] == "1000"
    assert user["params"] == {"password": "pw-1000"}
    assert user["variables"]["ecallmgr_Authorizing-ID"] == device["_id"]
    assert user["variables"]["ecallmgr_Realm"] == realm
    assert user["variables"]["ecallmgr_Inception"] == "on-net"


def test_a1_hash_user_and_cache(bridge: dict, fixtures_dir: Path, realm: str) -> None:
    a1 = provisioning.a1_hash("1001", realm, "secret1001")
    provisioning.create_device(realm, "1001", a1=a1)
    before = metrics(bridge["port"])
    for _ in range(3):
        status, xml = xmlcurl.post(bridge["port"], "/fs/directory",
                                   sip_auth_body(fixtures_dir, realm, "1001"))
        assert status == 200 and directory_user(xml)["params"] == {"a1-hash": a1}
    after = metrics(bridge["port"])
    key = 'whistle_bridge_requests_total{outcome="%s",section="directory"}'
    assert after[key % "answered"] - before.get(key % "answered", 0) == 1
    assert after[key % "cached"] - before.get(key % "cached", 0) == 2


def test_unknown_user_and_other_lookups_not_found(bridge: dict, fixtures_dir: Path,
                                                   realm: str) -> None:
    status, xml = xmlcurl.post(bridge["port"], "/fs/directory",
                               sip_auth_body(fixtures_dir, realm, "nobody"))
    assert status == 200 and directory_user(xml) is None
    # a user_call lookup (bridge user/...) and a gateways lookup: not found, promptly
    for case, stem in (("d_call_1001_bridge", "xmlcurl_04_directory_user_call_1001"),):
        started = time.monotonic()
        status, xml = xmlcurl.post(bridge["port"], "/fs/directory",
                                   xmlcurl.load(fixtures_dir, case, stem))
        assert status == 200 and directory_user(xml) is None
        assert time.monotonic() - started < 0.5


def test_disabled_device_refused_on_next_register(bridge: dict, fixtures_dir: Path,
                                                   realm: str) -> None:
    provisioning.create_device(realm, "2000", password="pw-2000")
    body = sip_auth_body(fixtures_dir, realm, "2000")
    assert directory_user(xmlcurl.post(bridge["port"], "/fs/directory", body)[1]) is not None
    assert directory_user(xmlcurl.post(bridge["port"], "/fs/directory", body)[1]) is not None
    import subprocess

    subprocess.run([str(support.VENV_BIN / "whistle"), "device", "disable", "--realm", realm,
                    "--username", "2000"], check=True, capture_output=True)
    assert directory_user(xmlcurl.post(bridge["port"], "/fs/directory", body)[1]) is None
    provisioning.set_device_enabled(realm, "2000", True)
    assert directory_user(xmlcurl.post(bridge["port"], "/fs/directory", body)[1]) is not None


def test_hostile_secret_is_escaped(bridge: dict, fixtures_dir: Path, realm: str) -> None:
    secret = '"/><param name="password" value="x"/><!-- ${system(id)} $${hostname} &amp; <'
    provisioning.create_device(realm, "2001", password=secret)
    _, xml = xmlcurl.post(bridge["port"], "/fs/directory",
                          sip_auth_body(fixtures_dir, realm, "2001"))
    user = directory_user(xml)
    assert list(user["params"]) == ["password"]
    assert b"${" not in xml and b"$${" not in xml
    assert user["params"]["password"].replace("\\$", "$") == secret


def test_malformed_and_forbidden(bridge: dict) -> None:
    before = metrics(bridge["port"])
    for body in (b"", b"just text without pairs", b"\xff\xfe" * 10, b"section=directory&%%%"):
        status, xml = xmlcurl.post(bridge["port"], "/fs/directory", body)
        assert status == 200 and directory_user(xml) is None
    after = metrics(bridge["port"])
    key = 'whistle_bridge_errors_total{kind="malformed_directory"}'
    assert after.get(key, 0) - before.get(key, 0) >= 3


def test_forbidden_client_gets_403(standin: EslStandIn, fixtures_dir: Path) -> None:
    port = free_port()
    env = {"WHISTLE_FS_NODES": f"127.0.0.1:{standin.port}:ClueCon",
           "WHISTLE_HTTP_LISTEN": f"127.0.0.1:{port}", "WHISTLE_HTTP_ALLOW": "10.0.0.0/8",
           "WHISTLE_HTTP_AUTH": "fs:s3cret"}
    proc = support.Process("bridge-403", [str(support.VENV_BIN / "python"), "-m",
                                          "switch_bridge"], env=env)
    try:
        support.wait_until(lambda: _port_open(port), timeout=20, what="bridge port")
        body = xmlcurl.load(fixtures_dir, "a_register_unregister",
                            "xmlcurl_01_directory_sip_auth_REGISTER_1000")
        assert xmlcurl.post(port, "/fs/directory", body)[0] == 403
        assert xmlcurl.post(port, "/fs/dialplan", body)[0] == 403
    finally:
        proc.stop()
    assert "refused /fs/directory from 127.0.0.1" in proc.output()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# --- dialplan ------------------------------------------------------------------------------

@pytest.fixture()
def route_stub(realm: str) -> Iterator[RouteStub]:
    stub = RouteStub(realm)
    yield stub
    stub.close()


def test_dialplan_bridge_park_error(bridge: dict, fixtures_dir: Path, realm: str,
                                    route_stub: RouteStub) -> None:
    route_stub.answers["1001"] = {"Method": "bridge", "Routes": [{
        "Invite-Format": "username", "To-User": "1001", "To-Realm": realm,
        "Route": "sip:1001@127.0.0.1:5071;transport=UDP", "Caller-ID-Name": "Alice"}]}
    route_stub.answers["2000"] = {"Method": "park"}
    route_stub.answers["9999"] = {"Method": "error", "Route-Error-Code": 486,
                                  "Route-Error-Message": "Busy Here"}
    status, xml = xmlcurl.post(bridge["port"], "/fs/dialplan",
                               dialplan_body(fixtures_dir, realm, "1001"))
    assert status == 200
    acts = actions(xml)
    bridges = [data for app, data in acts if app == "bridge"]
    assert len(bridges) == 1 and "sip:1001@127.0.0.1:5071;transport=UDP" in bridges[0]
    assert ("set", "hangup_after_bridge=true") in acts
    assert acts[-1] == ("hangup", "${originate_disposition}")
    context = ET.fromstring(xml).find("./section[@name='dialplan']/context")
    assert context.get("name") == "default"
    request = route_stub.requests[-1]
    assert request["Request"] == f"1001@{realm}"
    assert request["Call-ID"]
    schemas.validate(request)

    _, xml = xmlcurl.post(bridge["port"], "/fs/dialplan",
                          dialplan_body(fixtures_dir, realm, "2000"))
    assert [app for app, _ in actions(xml)][-1] == "park"
    _, xml = xmlcurl.post(bridge["port"], "/fs/dialplan",
                          dialplan_body(fixtures_dir, realm, "9999"))
    assert actions(xml) == [("respond", "486 Busy Here")]


def test_dialplan_timeout_gives_604(bridge: dict, fixtures_dir: Path, realm: str,
                                    route_stub: RouteStub) -> None:
    started = time.monotonic()
    _, xml = xmlcurl.post(bridge["port"], "/fs/dialplan",
                          dialplan_body(fixtures_dir, realm, "5555"))
    elapsed = time.monotonic() - started
    assert actions(xml) == [("respond", "604 no available handlers")]
    assert BUDGET_MS / 1000 * 0.9 <= elapsed < BUDGET_MS / 1000 + 1.0
    assert "no answer within" in bridge["proc"].output()


def test_directory_timeout_gives_not_found(fixtures_dir: Path, bridge: dict, realm: str,
                                           whapp_worker: support.Process) -> None:
    """The registrar is frozen (SIGSTOP): the bridge answers not found within its budget."""
    import signal

    provisioning.create_device(realm, "3000", password="pw")
    whapp_worker.kill(signal.SIGSTOP)
    try:
        started = time.monotonic()
        _, xml = xmlcurl.post(bridge["port"], "/fs/directory",
                              sip_auth_body(fixtures_dir, realm, "3000"))
        elapsed = time.monotonic() - started
    finally:
        whapp_worker.kill(signal.SIGCONT)
    assert directory_user(xml) is None
    assert BUDGET_MS / 1000 * 0.9 <= elapsed < BUDGET_MS / 1000 + 1.0
    # once the registrar is back, the same user is answered again
    support.wait_until(lambda: directory_user(xmlcurl.post(
        bridge["port"], "/fs/directory", sip_auth_body(fixtures_dir, realm, "3000"))[1]),
        timeout=10, what="answer after SIGCONT")


def test_hostile_caller_id_cannot_inject(bridge: dict, fixtures_dir: Path, realm: str,
                                         route_stub: RouteStub) -> None:
    hostile = '"/><action application="bridge" data="sofia/gateway/x/900"/>'
    route_stub.answers["1002"] = {"Method": "bridge", "Routes": [{
        "Invite-Format": "route", "Route": "sip:1002@198.51.100.1",
        "Caller-ID-Name": hostile, "Caller-ID-Number": "${system(id)}"}]}
    _, xml = xmlcurl.post(bridge["port"], "/fs/dialplan",
                          dialplan_body(fixtures_dir, realm, "1002",
                                        {"Caller-Caller-ID-Name": hostile}))
    acts = actions(xml)
    bridges = [data for app, data in acts if app == "bridge"]
    assert len(bridges) == 1, acts
    assert bridges[0].endswith("]sofia/internal/sip:1002@198.51.100.1")
    assert [app for app, _ in acts] == ["set", "set", "set", "bridge", "hangup"]
    assert b"${system" not in xml


# --- events --------------------------------------------------------------------------------

def _expected_call_events(path: Path) -> list[dict[str, Any]]:
    expected = []
    wanted = set(fs_events.subscription())
    for frame in load_capture_events(path):
        event = parse_event(frame)
        if event is None or event.name not in wanted:
            continue
        translated = fs_events.call_event(event, node="x")
        if translated is not None:
            expected.append(translated[1])
    return expected


@pytest.mark.parametrize("case,fmt", [("c_call_2000_tone_park", "json"),
                                      ("d_call_1001_bridge", "json")])
def test_event_stream_reaches_amqp(bridge: dict, standin: EslStandIn, fixtures_dir: Path,
                                   case: str, fmt: str) -> None:
    path = fixtures_dir / "modern" / case / f"esl_{case[0]}_{fmt}.txt"
    expected = _expected_call_events(path)
    call_ids = {m["Call-ID"] for m in expected}
    sink = EventSink()
    try:
        standin.replay(path, split=True, seed=3)
        sink.drain(len(expected))
        got = [m for m in sink.settle(1.0) if m["Call-ID"] in call_ids]
    finally:
        sink.close()
    assert len(got) == len(expected)
    fields = ("Event-Name", "Call-ID", "Timestamp", "Application-Name", "Application-Response",
              "Hangup-Cause", "Channel-Call-State", "Custom-Channel-Vars")
    assert [{k: m.get(k) for k in fields} for m in got] == \
        [{k: m.get(k) for k in fields} for m in expected]
    for msg in got:
        schemas.validate(msg)


def test_registration_events_reach_the_registrar(bridge: dict, standin: EslStandIn,
                                                  fixtures_dir: Path) -> None:
    """The real sofia::register of capture a stores a registration; its sofia::unregister
    removes it; the pre_register/register_attempt events around them are not registrations."""
    from whistle_tasks.data import registrations

    frames = load_capture_events(fixtures_dir / "modern" / "a_register_unregister" /
                                 "esl_a_json.txt")
    by_subclass: dict[str, list] = {}
    for frame in frames:
        by_subclass.setdefault(parse_event(frame).subclass or "", []).append(frame)
    registrations.deregister("127.0.0.1", "1000")
    for frame in by_subclass["sofia::pre_register"] + by_subclass["sofia::register_attempt"]:
        standin.send_raw(frame.to_bytes())
    for frame in by_subclass["sofia::register"]:
        standin.send_raw(frame.to_bytes())
    support.wait_until(lambda: _reg_docs("127.0.0.1", "1000") == 1, timeout=15,
                       what="registration stored")
    from whistle_tasks.core.couch import get_couch

    # (the capture's own Event-Timestamp is hours old, so lookup() would call it expired)
    (row,) = [r for r in get_couch().view(
        "registrations", "registrations", "by_user", startkey=["127.0.0.1", "1000"],
        endkey=["127.0.0.1", "1000", {}], include_docs=True)
        if not r["doc"].get("pvt_unregistered")]
    assert row["doc"]["Contact"].startswith("sip:1000@127.0.0.1")
    assert row["doc"]["Status"] == "Registered(UDP)"
    for frame in by_subclass["sofia::unregister"]:
        standin.send_raw(frame.to_bytes())
    support.wait_until(lambda: _reg_docs("127.0.0.1", "1000") == 0, timeout=15,
                       what="registration removed")


def _reg_docs(realm: str, user: str) -> int:
    """Registrations stored for the user (an un-REGISTER leaves a tombstone, not counted)."""
    from whistle_tasks.core.couch import get_couch

    rows = get_couch().view("registrations", "registrations", "by_user",
                            startkey=[realm, user], endkey=[realm, user, {}],
                            include_docs=True)
    return sum(1 for r in rows if r.get("doc") and not r["doc"].get("pvt_unregistered"))


def test_reconnect_after_drop_and_broken_frames(bridge: dict, standin: EslStandIn) -> None:
    before = {c.id for c in standin.connections}
    standin.drop()
    support.wait_until(lambda: {c.id for c in standin.subscribed} - before, timeout=15,
                       what="the bridge to reconnect and subscribe again")
    call = str(uuid.uuid4())
    sink = EventSink(f"call.*.{call}")
    try:
        before = metrics(bridge["port"]).get("whistle_bridge_esl_frame_errors", 0)
        standin.send_raw(b"Content-Length: nonsense\nContent-Type: text/event-json\n\n{}")
        standin.send_raw(b"garbage without a colon\n\n")
        standin.send_event("CHANNEL_ANSWER", [("Unique-ID", call),
                                              ("Channel-Call-State", "ACTIVE")])
        got = sink.drain(1, timeout=10)
    finally:
        sink.close()
    assert [m["Event-Name"] for m in got] == ["CHANNEL_ANSWER"]
    assert metrics(bridge["port"])["whistle_bridge_esl_frame_errors"] > before


def test_metrics_parse_as_prometheus(bridge: dict) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"http://127.0.0.1:{bridge['port']}/metrics", timeout=5).text
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"whistle_bridge_requests", "whistle_bridge_answer_seconds",
            "whistle_bridge_esl_node_up", "whistle_bridge_buffered_messages"} <= names


def test_http_connection_handling(bridge: dict) -> None:
    """libcurl's way (one request, Connection: close) and keep-alive both work; bad HTTP
    gets a 400 and an oversized body a 413, and the bridge carries on."""
    port = bridge["port"]

    def exchange(payload: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(payload)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

    close = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = exchange(close)          # returns only because the bridge closed
    assert answer.startswith(b"HTTP/1.1 200") and b"Connection: close" in answer
    keep = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = exchange(keep + close)   # two requests on one connection
    assert answer.count(b"HTTP/1.1 200") == 2
    assert exchange(b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400")
    big = b"x" * (1 << 20 + 1)
    head = (f"POST /fs/directory HTTP/1.1\r\nHost: x\r\nContent-Length: {len(big)}\r\n"
            "Connection: close\r\n\r\n").encode()
    assert exchange(head + big).startswith(b"HTTP/1.1 413")
    assert health(port)
