"""What the bridge tests share: a bridge process beside the ESL stand-in, a route stub,
an event sink on callevt, real mod_xml_curl bodies rewritten for a test's own realm, and
readers of the XML the bridge answers."""

from __future__ import annotations

import socket
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import requests
from kombu import Connection, Consumer, Queue

import schemas
from schemas.keys import route_req_key
from tests import support, xmlcurl
from tests.esl_standin import EslStandIn
from whistle_tasks.core import amqp
from whistle_tasks.core.config import settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RouteStub:
    """Answers route_req for one realm like a whapp would: a route_resp per destination,
    or nothing (to let the bridge time out)."""

    def __init__(self, realm: str) -> None:
        self.answers: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.conn = Connection(settings.amqp_url)
        queue = Queue(f"test-route-stub-{uuid.uuid4().hex}", exchange=amqp.CALLMGR,
                      routing_key=route_req_key(realm), exclusive=True, auto_delete=True)
        self.publisher = amqp.Publisher(settings.amqp_url)
        self.consumer = Consumer(self.conn.channel(), queues=[queue],
                                 callbacks=[self._on_request], accept=["json"], no_ack=True)
        self.consumer.consume()
        self._stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self._stop:
            try:
                self.conn.drain_events(timeout=0.2)
            except TimeoutError:
                pass

    def _on_request(self, body: Any, message: Any) -> None:  # noqa: ANN401
        request = body[0][0]
        self.requests.append(request)
        destination = request["Request"].rpartition("@")[0]
        data = self.answers.get(destination)
        if data is None:
            return
        answer = schemas.build("route_resp", {**data, "Msg-ID": request["Msg-ID"]},
                               **{"App-Name": "route-stub"})
        self.publisher.publish_api(answer, amqp.TARGETED, request["Server-ID"])

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        self.conn.release()


class EventSink:
    """Collects what the bridge publishes on callevt."""

    def __init__(self, key: str = "call.#") -> None:
        self.messages: list[dict[str, Any]] = []
        self.conn = Connection(settings.amqp_url)
        queue = Queue(f"test-events-{uuid.uuid4().hex}", exchange=amqp.CALLEVT, routing_key=key,
                      exclusive=True, auto_delete=True)
        self.consumer = Consumer(self.conn.channel(), queues=[queue],
                                 callbacks=[lambda b, m: self.messages.append(b)],
                                 accept=["json"], no_ack=True)
        self.consumer.consume()

    def drain(self, until: int, timeout: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < until and time.monotonic() < deadline:
            try:
                self.conn.drain_events(timeout=0.2)
            except TimeoutError:
                pass
        return self.messages

    def settle(self, quiet: float = 1.0) -> list[dict[str, Any]]:
        """Drain until nothing came for ``quiet`` seconds."""
        while True:
            try:
                self.conn.drain_events(timeout=quiet)
            except TimeoutError:
                return self.messages

    def close(self) -> None:
        self.conn.release()


def start_bridge(standin: EslStandIn, name: str = "bridge",
                 **env: str) -> tuple[support.Process, int]:
    """A bridge process on a free port, connected to ``standin`` and to RabbitMQ."""
    port = free_port()
    full_env = {"WHISTLE_FS_NODES": f"127.0.0.1:{standin.port}:ClueCon",
                "WHISTLE_HTTP_LISTEN": f"127.0.0.1:{port}", **env}
    proc = support.Process(name, [str(support.VENV_BIN / "python"), "-m", "switch_bridge"],
                           env=full_env)
    support.wait_until(lambda: health(port), timeout=20, what=f"{name} health")
    return proc, port


def health(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def metrics(port: int) -> dict[str, float]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def sip_auth_body(fixtures: Path, realm: str, user: str) -> bytes:
    body = xmlcurl.load(fixtures, "a_register_unregister",
                        "xmlcurl_01_directory_sip_auth_REGISTER_1000")
    return xmlcurl.rewrite(body, {
        "sip_auth_username": user, "sip_auth_realm": realm, "user": user, "domain": realm,
        "sip_to_user": user, "sip_to_host": realm, "sip_from_user": user,
        "sip_from_host": realm, "key_value": realm, "sip_contact_user": user,
        "sip_call_id": uuid.uuid4().hex})


def dialplan_body(fixtures: Path, realm: str, destination: str,
                  extra: dict[str, str] | None = None) -> bytes:
    body = xmlcurl.load(fixtures, "d_call_1001_bridge", "xmlcurl_03_dialplan_default_1001")
    return xmlcurl.rewrite(body, {
        "Caller-Destination-Number": destination, "Hunt-Destination-Number": destination,
        "variable_sip_req_host": realm, "variable_sip_to_host": realm,
        "variable_sip_req_user": destination, "variable_sip_to_user": destination,
        "variable_ecallmgr_Realm": realm, "Unique-ID": str(uuid.uuid4()),
        "Channel-Call-UUID": str(uuid.uuid4()), **(extra or {})})


def directory_user(xml: bytes) -> dict[str, Any] | None:
    root = ET.fromstring(xml)
    user = root.find("./section[@name='directory']/domain/user")
    if user is None:
        assert root.find("./section[@name='result']/result").get("status") == "not found"
        return None
    params = {p.get("name"): p.get("value") for p in user.iter("param")}
    variables = {v.get("name"): v.get("value") for v in user.iter("variable")}
    return {"id": user.get("id"), "params": params, "variables": variables}


def actions(xml: bytes) -> list[tuple[str, str | None]]:
    root = ET.fromstring(xml)
    return [(a.get("application"), a.get("data")) for a in root.iter("action")]


