"""The REST API v1 on a real gunicorn, against the real platform: registrar and cdr workers,
a bridge fed by the ESL stand-in (a call's events and a registration as FreeSWITCH sends
them), RabbitMQ, Redis and CouchDB.

The isolation test walks every operation of the OpenAPI document with one account's key
and the other account's ids, and gets 404 or 403 each time, never its data."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests import support
from tests.apikit import Switch, Tenant, get, start_api, system_headers, tenant
from whistle_tasks.ops import api_keys, provisioning

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cdr_worker(clean_services: None) -> Iterator[support.Process]:
    worker = support.start_worker("cdr", name="cdr-api", pool="threads", concurrency=2,
                                  env={"WHISTLE_CDR_LINGER_MS": "100"})
    support.wait_until(lambda: "cdr consumer: consuming" in worker.output(), 20,
                       what="the cdr consumer")
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def api(whapp_worker: support.Process, cdr_worker: support.Process,
        bridge: dict[str, Any]) -> Iterator[str]:
    proc, base = start_api()
    yield base
    proc.stop()
    out = proc.output()
    assert "Traceback" not in out, out[-3000:]
    for key in ISSUED:
        assert key not in out           # keys never reach a log


ISSUED: list[str] = []


@pytest.fixture(scope="module")
def switch(standin: Any) -> Switch:  # noqa: ANN401
    return Switch(standin)


@pytest.fixture(scope="module")
def tenants() -> tuple[Tenant, Tenant]:
    a, b = tenant("a"), tenant("b")
    ISSUED.extend([a.key, b.key])
    return a, b


class Stream:
    """An SSE client in a thread: every ``event:``/``data:`` pair it read."""

    def __init__(self, base: str, who: Tenant) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.resp = requests.get(f"{base}/v1/accounts/{who.id}/events", headers=who.headers,
                                 stream=True, timeout=(5, 60))
        assert self.resp.status_code == 200, self.resp.text
        assert self.resp.headers["Content-Type"].startswith("text/event-stream")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        kind = None
        try:
            for line in self.resp.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind:
                    self.events.append((kind, json.loads(line[6:])))
                    kind = None
        except (requests.RequestException, AttributeError, ValueError):
            return

    def wait(self, predicate: Any, what: str) -> tuple[str, dict[str, Any]]:  # noqa: ANN401
        return support.wait_until(
            lambda: next((e for e in self.events if predicate(e)), None), 15, what=what)

    def close(self) -> None:
        self.resp.close()


def test_openapi_document_is_served_and_complete(api: str) -> None:
    doc = requests.get(f"{api}/v1/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path in ("/v1/accounts/{account_id}/devices", "/v1/accounts/{account_id}/cdrs",
                 "/v1/accounts/{account_id}/calls/{call_id}",
                 "/v1/accounts/{account_id}/events", "/v1/health"):
        assert path in paths
    param = paths["/v1/accounts/{account_id}/devices"]["parameters"][0]
    assert param["schema"]["pattern"] == "^[0-9a-f]{32}$"


def test_keys_and_errors(api: str, tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    assert requests.get(f"{api}/v1/accounts", timeout=10).status_code == 401
    assert get(api, "/v1/accounts", {"Authorization": "Bearer whk_0123456789abcdef_"
                                     + "x" * 43}).status_code == 401
    mine = get(api, "/v1/accounts", a).json()["data"]
    assert [m["id"] for m in mine] == [a.id]
    bad = requests.post(f"{api}/v1/accounts/{a.id}/devices", headers=a.headers, timeout=10,
                        json={"username": "bad user", "a1_hash": "xyz", "colour": "red"})
    assert bad.status_code == 422
    fields = bad.json()["errors"]["json"]
    assert set(fields) == {"username", "a1_hash", "colour"}
    both = requests.post(f"{api}/v1/accounts/{a.id}/devices", headers=a.headers, timeout=10,
                         json={"username": "2000"})
    assert "password" in both.json()["errors"]["json"]
    big = requests.post(f"{api}/v1/accounts/{a.id}/devices", timeout=10,
                        data=b"{" + b" " * 2_000_000 + b"}",
                        headers={**a.headers, "Content-Type": "application/json"})
    assert big.status_code == 413 and "limited" in big.json()["message"]
    for path in (f"/v1/accounts/{a.id[:-1]}Z/devices", "/v1/accounts/..%2F..%2F_all_dbs",
                 f"/v1/accounts/{a.id}/devices/not-an-id", f"/v1/accounts/{a.id}/numbers/12a"):
        resp = get(api, path, a)
        assert resp.status_code == 404 and resp.json()["code"] == 404
    cursor = get(api, f"/v1/accounts/{a.id}/cdrs", a, cursor="garbage")
    assert cursor.status_code == 422 and "cursor" in cursor.json()["errors"]["query"]
    # a revoked key is refused at once
    key, doc = api_keys.create(a.realm, name="short-lived")
    ISSUED.append(key)
    assert get(api, "/v1/accounts", {"Authorization": f"Bearer {key}"}).status_code == 200
    api_keys.revoke(doc["_id"])
    support.wait_until(lambda: get(api, "/v1/accounts", {"Authorization": f"Bearer {key}"}
                                   ).status_code == 401, 5, what="the revoked key refused")


def test_devices_and_numbers_go_through_provisioning(api: str,
                                                     tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    url = f"{api}/v1/accounts/{a.id}"
    made = requests.post(f"{url}/devices", headers=a.headers, timeout=10,
                         json={"username": "1000", "password": "s3cret", "name": "Desk",
                               "caller_id": {"name": "Front desk", "number": "+15551234567"}})
    assert made.status_code == 201, made.text
    device = made.json()
    assert "password" not in device and device["auth"] == "password"
    # the same write path as the CLI: the registrar sees it at once
    assert provisioning.get_device(a.realm, "1000")["sip"]["password"] == "s3cret"
    dup = requests.post(f"{url}/devices", headers=a.headers, timeout=10,
                        json={"username": "1000", "password": "x"})
    assert dup.status_code == 409 and "username" in dup.json()["errors"]["json"]
    off = requests.patch(f"{url}/devices/{device['id']}", headers=a.headers, timeout=10,
                         json={"enabled": False})
    assert off.json()["enabled"] is False
    assert provisioning.get_device(a.realm, "1000")["enabled"] is False
    provisioning.create_devices(a.realm, [{"username": f"5{i:03d}", "password": "pw"}
                                          for i in range(250)])
    seen, cursor = [], None
    while True:
        page = get(api, f"/v1/accounts/{a.id}/devices", a, limit=100,
                   **({"cursor": cursor} if cursor else {})).json()
        seen += [d["username"] for d in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 251 and seen == sorted(seen) and len(set(seen)) == 251
    num = requests.post(f"{url}/numbers", headers=a.headers, timeout=10,
                        json={"number": "2000", "to": "device:1000"})
    assert num.status_code == 201 and num.json()["to"] == {"type": "device", "username": "1000"}
    wrong = requests.post(f"{url}/numbers", headers=a.headers, timeout=10,
                          json={"number": "2001", "to": "device:nobody"})
    assert wrong.status_code == 400 and "to" in wrong.json()["errors"]["json"]
    csv_file = b"username,password,name\n6001,pw,One\n6002,,Two\n6001,pw,Again\n"
    imported = requests.post(f"{url}/devices/import", headers=a.headers, data=csv_file,
                             timeout=30)
    assert imported.status_code == 200, imported.text
    summary = imported.json()
    assert (summary["created"], summary["skipped"], summary["failed"]) == (1, 1, 1)
    assert {p["line"] for p in summary["problems"]} == {3, 4}
    other = requests.post(f"{url}/devices/import", headers=a.headers, timeout=30,
                          data=b"realm,username,password\nelsewhere.example.com,6100,pw\n")
    assert other.status_code == 422 and "realm" in other.json()["errors"]["body"]
    assert get(api, f"/v1/accounts/{a.id}/numbers/2000", a).status_code == 200
    assert requests.delete(f"{url}/numbers/2000", headers=a.headers,
                           timeout=10).status_code == 204
    assert get(api, f"/v1/accounts/{a.id}/numbers/2000", a).status_code == 404


def test_a_call_streams_live_and_leaves_a_record(api: str, tenants: tuple[Tenant, Tenant],
                                                 switch: Switch) -> None:
    a, b = tenants
    mine, theirs = Stream(api, a), Stream(api, b)
    try:
        switch.register(a.realm, "1000")
        mine.wait(lambda e: e[0] == "registration" and e[1]["username"] == "1000",
                  "the registration event")
        support.wait_until(lambda: get(api, f"/v1/accounts/{a.id}/registrations", a
                                       ).json()["data"], 10, what="the registration listed")
        call = switch.ring(a.id, "1000", "2000")
        switch.answer(call)
        mine.wait(lambda e: e[1].get("event") == "CHANNEL_ANSWER" and e[1]["call_id"] == call,
                  "the answer event")
        listed = support.wait_until(lambda: [c for c in get(
            api, f"/v1/accounts/{a.id}/calls", a).json()["data"] if c["call_id"] == call
            and c["state"] == "answered"], 10, what="the call listed as answered")
        assert listed[0]["caller_id_number"] == "1000"
        hung = requests.delete(f"{api}/v1/accounts/{a.id}/calls/{call}", headers=a.headers,
                               timeout=10)
        assert hung.status_code == 200, hung.text
        assert hung.json()["result"] == "ok" and switch.killed == [call]
        mine.wait(lambda e: e[1].get("event") == "CHANNEL_HANGUP_COMPLETE",
                  "the hangup event")
        record = support.wait_until(lambda: get(api, f"/v1/accounts/{a.id}/cdrs/{call}", a
                                                ).json() if get(
            api, f"/v1/accounts/{a.id}/cdrs/{call}", a).status_code == 200 else None, 10,
            what="the record of the call")
        assert record["hung_up_by"] == "callee" and record["dialled_number"] == "2000"
        assert record["user_agent"] == "standin-phone" and not record["partial"]
        listed = get(api, f"/v1/accounts/{a.id}/cdrs", a, since=str(time.time() - 3600)).json()
        assert call in [r["id"] for r in listed["data"]]
        csv = get(api, f"/v1/accounts/{a.id}/cdrs", a, format="csv")
        assert csv.headers["Content-Type"].startswith("text/csv") and call in csv.text
        assert support.wait_until(lambda: not [c for c in get(
            api, f"/v1/accounts/{a.id}/calls", a).json()["data"] if c["call_id"] == call],
            10, what="the call gone from the calls in progress")
        time.sleep(0.5)
        assert not [e for e in theirs.events if e[1].get("call_id") == call
                    or e[1].get("username") == "1000"]
    finally:
        mine.close()
        theirs.close()


def test_a_call_is_transferred_through_the_bridge_that_has_it(
        api: str, tenants: tuple[Tenant, Tenant], switch: Switch, standin: Any) -> None:  # noqa: ANN401
    a, _ = tenants
    call = switch.ring(a.id, "1000", "2000")
    support.wait_until(lambda: get(api, f"/v1/accounts/{a.id}/calls/{call}", a
                                   ).status_code == 200, 10, what="the call listed")
    url = f"{api}/v1/accounts/{a.id}/calls/{call}/transfer"
    bad = requests.post(url, headers=a.headers, json={"to": "20 00; hangup"}, timeout=10)
    assert bad.status_code == 422 and "to" in bad.json()["errors"]["json"]
    done = requests.post(url, headers=a.headers, json={"to": "3000"}, timeout=10)
    assert done.status_code == 200, done.text
    sent = standin.wait_for_command(lambda c: c.verb == "api" and "uuid_transfer" in c.args)
    assert sent.args == f"uuid_transfer {call} 3000 XML default"
    switch.hangup(call)
    gone = requests.delete(f"{api}/v1/accounts/{a.id}/calls/{uuid.uuid4()}", headers=a.headers,
                           timeout=10)
    assert gone.status_code == 404


def _fill(path: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    return path


BODIES = {
    ("post", "/v1/accounts"): {"name": "Intruder", "realm": "intruder.example.com"},
    ("patch", "/v1/accounts/{account_id}"): {"enabled": False},
    ("post", "/v1/accounts/{account_id}/devices"): {"username": "9999", "password": "pw"},
    ("patch", "/v1/accounts/{account_id}/devices/{device_id}"): {"enabled": False},
    ("post", "/v1/accounts/{account_id}/numbers"): {"number": "3999", "to": "app:x"},
    ("post", "/v1/accounts/{account_id}/calls/{call_id}/transfer"): {"to": "2000"},
}
#: bodies that are not JSON (CSV files)
RAW_BODIES = {
    ("post", "/v1/accounts/{account_id}/devices/import"): b"username,password\nx1,pw\n",
    ("post", "/v1/accounts/{account_id}/numbers/import"): b"number,to\n3998,app:x\n",
}


def test_an_account_key_is_confined_to_its_account(api: str, tenants: tuple[Tenant, Tenant],
                                                   switch: Switch) -> None:
    a, b = tenants
    device = provisioning.create_device(b.realm, "7000", password="theirs")
    provisioning.add_number("3000", b.realm, "device:7000")
    ended = switch.ring(b.id, "7000", "3000")
    switch.hangup(ended)
    live = switch.ring(b.id, "7000", "3001")
    support.wait_until(lambda: get(api, f"/v1/accounts/{b.id}/cdrs/{ended}", b
                                   ).status_code == 200, 10, what="B's record")
    support.wait_until(lambda: get(api, f"/v1/accounts/{b.id}/calls/{live}", b
                                   ).status_code == 200, 10, what="B's call in progress")
    theirs = {"device_id": device["_id"], "number": "3000", "cdr_id": ended, "call_id": live}
    secrets = [b.realm, b.id, device["_id"], ended, live, "theirs"]
    doc = requests.get(f"{api}/v1/openapi.json", timeout=10).json()
    tried = 0
    for path, item in doc["paths"].items():
        if path == "/v1/health":
            continue
        for method in ("get", "post", "patch", "put", "delete"):
            if method not in item:
                continue
            if "pbx" in item[method].get("tags", []):
                continue  # walked with real ids of each kind by tests/test_api_pbx.py
            body = BODIES.get((method, path))
            # B's ids with A's key; then A's own account with B's ids below it
            for account in ((b.id, a.id) if path.count("{") >= 2 else (b.id,)):
                if path == "/v1/accounts" and method == "get":
                    continue
                if path == "/v1/compact":
                    continue  # tried below, without running a compaction
                url = api + _fill(path, {"account_id": account, **theirs})
                raw = RAW_BODIES.get((method, path))
                resp = requests.request(method, url, headers=a.headers, timeout=10,
                                        stream=True, **({"data": raw} if raw else {"json": body}))
                content = resp.raw.read(65536, decode_content=True).decode("utf-8", "replace")
                resp.close()
                tried += 1
                if path in ("/v1/accounts", "/v1/status", "/v1/compact") and method in (
                        "post", "get") and "{" not in path:
                    assert resp.status_code == 403, content
                else:
                    assert resp.status_code == 404, (method, url, resp.status_code, content)
                for secret in secrets:
                    if secret == account:
                        continue  # A's own id, or B's id that A typed in the URL
                    assert secret not in content, (method, url, secret)
    assert tried >= 25
    assert requests.post(f"{api}/v1/compact", headers=a.headers, timeout=10).status_code == 403
    listing = get(api, "/v1/accounts", a).json()["data"]
    assert [x["id"] for x in listing] == [a.id]
    # nothing of B's changed
    assert provisioning.get_device(b.realm, "7000")["enabled"] is True
    assert provisioning.get_account(b.realm)["enabled"] is True
    assert live not in switch.killed
    # the operator's key sees both
    ops = system_headers()
    ISSUED.append(ops["Authorization"][7:])
    everyone = {x["id"] for x in get(api, "/v1/accounts", ops).json()["data"]}
    assert {a.id, b.id} <= everyone
    assert get(api, f"/v1/accounts/{b.id}/calls/{live}", ops).status_code == 200
    switch.hangup(live)


def test_the_operator_sees_the_platform_status(api: str, tenants: tuple[Tenant, Tenant]) -> None:
    ops = system_headers()
    ISSUED.append(ops["Authorization"][7:])
    status = get(api, "/v1/status", ops)
    assert status.status_code == 200 and "problems" in status.json()
    assert {q["whapp"] for q in status.json()["queues"]} >= {"registrar", "cdr"}
    assert get(api, "/v1/status", tenants[0]).status_code == 403


def test_health_needs_no_key(api: str) -> None:
    resp = requests.get(f"{api}/v1/health", timeout=10)
    assert resp.status_code == 200 and resp.json() == {
        "status": "ok", "couchdb": True, "redis": True, "rabbitmq": True}
