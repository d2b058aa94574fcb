"""The PBX half of the REST API on a real gunicorn, against the real platform: users (their
devices, do-not-disturb, forwarding), ring groups, callflows (422 naming the path in the
flow), voicemail boxes, messages, greetings and prompts (audio only: 415, 413), click-to-call
through a bridge fed by the ESL stand-in, and one call record per leg that the API and
``whistle cdr list`` both return. Every write is checked through the ops functions the CLI
uses; the isolation test walks every PBX operation of the OpenAPI document with one account's
key and another account's ids of each kind (404/403, never its data, nothing changed)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests import mediakit, support
from tests.apikit import Switch, Tenant, get, start_api, system_headers, tenant
from tests.test_api import cdr_worker, switch  # noqa: F401 - fixtures
from whistle_tasks.core.couch import get_couch
from whistle_tasks.data import registrations
from whistle_tasks.data import voicemail as vm
from whistle_tasks.ops import callflows as cf_ops
from whistle_tasks.ops import provisioning
from whistle_tasks.ops import users as user_ops
from whistle_tasks.ops import voicemail as vm_ops

pytestmark = pytest.mark.slow

LIMIT = 200_000                 # WHISTLE_MEDIA_MAX_BYTES of this module's API
WHISTLE = str(support.VENV_BIN / "whistle")
SECRETS: list[str] = []         # keys and PINs: never in the API's log
WAV = mediakit.wav_bytes(0.5)   # 8 kB
MESSAGE = mediakit.wav_bytes(3)  # a message is 2 s at least


@pytest.fixture(scope="module")
def api(whapp_worker: support.Process, cdr_worker: support.Process,  # noqa: F811
        bridge: dict[str, Any]) -> Iterator[str]:
    proc, base = start_api("api-pbx", env={"WHISTLE_MEDIA_MAX_BYTES": str(LIMIT)})
    yield base
    proc.stop()
    out = proc.output()
    assert "Traceback" not in out, out[-3000:]
    for secret in SECRETS:
        assert secret not in out


@pytest.fixture(scope="module")
def tenants() -> tuple[Tenant, Tenant]:
    a, b = tenant("pa"), tenant("pb")
    SECRETS.extend([a.key, b.key])
    return a, b


def call(method: str, base: str, path: str, who: Tenant | dict[str, str],
         **kwargs: Any) -> requests.Response:  # noqa: ANN401
    headers = who.headers if isinstance(who, Tenant) else who
    return requests.request(method, base + path, headers={**headers,
                                                          **kwargs.pop("headers", {})},
                            timeout=30, **kwargs)


def fields_of(resp: requests.Response) -> dict[str, list[str]]:
    return resp.json().get("errors", {}).get("json", {})


def put_audio(base: str, path: str, who: Tenant | dict[str, str], data: bytes,
              content_type: str = "audio/wav") -> requests.Response:
    return call("PUT", base, path, who, data=data, headers={"Content-Type": content_type})


def add_message(realm: str, mailbox: str, caller: str = "2000") -> str:
    """A message as the voicemail module leaves one: recorded, stored, filed as new."""
    account = provisioning.get_account(realm)
    db = account["pvt_account_db"]
    _, box = vm_ops.get_box(realm, mailbox)
    msg = vm.begin_message({"id": account["_id"], "realm": realm, "account_db": db}, box,
                           caller_id_name="Bob", caller_id_number=caller,
                           call_id=str(uuid.uuid4()))
    get_couch().put_attachment(db, msg["_id"], vm.MESSAGE_FILE, MESSAGE, "audio/wav")
    get_couch().update(db, msg["_id"], lambda cur: {
        **cur, "pvt_media": {vm.MESSAGE_FILE: {"length_ms": 3000}}})
    assert vm.finish_message(db, box, msg["_id"]) is not None
    return msg["_id"]


# --- users --------------------------------------------------------------------------------

def test_users_devices_dnd_and_forwarding(api: str, tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    url = f"/v1/accounts/{a.id}/users"
    made = call("POST", api, url, a, json={"username": "alice", "name": "Alice"})
    assert made.status_code == 201, made.text
    assert made.json()["username"] == "alice" and made.json()["devices"] == []
    assert user_ops.get_user(a.realm, "alice")["name"] == "Alice"   # the CLI's user
    dup = call("POST", api, url, a, json={"username": "alice"})
    assert dup.status_code == 409 and "username" in fields_of(dup)
    bad = call("POST", api, url, a, json={"username": "al ice", "colour": "red"})
    assert bad.status_code == 422 and set(fields_of(bad)) == {"username", "colour"}

    provisioning.create_device(a.realm, "1000", password="pw")
    owned = call("POST", api, f"{url}/alice/devices", a, json={"device": "1000"})
    assert owned.status_code == 200, owned.text
    assert owned.json()["devices"] == ["1000"]
    assert provisioning.get_device(a.realm, "1000")["owner_id"] == made.json()["id"]
    nodev = call("POST", api, f"{url}/alice/devices", a, json={"device": "1999"})
    assert nodev.status_code == 400 and "device" in fields_of(nodev)
    listed = call("GET", api, url, a).json()["data"]
    assert [(u["username"], u["devices"]) for u in listed] == [("alice", ["1000"])]

    dnd = call("PATCH", api, f"{url}/alice", a, json={"do_not_disturb": True})
    assert dnd.status_code == 200 and dnd.json()["do_not_disturb"] is True
    assert user_ops.get_user(a.realm, "alice")["do_not_disturb"] is True
    fwd = call("PATCH", api, f"{url}/alice", a, json={"call_forward": {
        "to": "+14155550100", "when": ["busy", "no_answer"], "keep_caller_id": False}})
    assert fwd.status_code == 200, fwd.text
    stored = user_ops.get_user(a.realm, "alice")["call_forward"]
    assert stored == {"enabled": True, "keep_caller_id": False, "number": "+14155550100",
                      "always": False, "busy": True, "no_answer": True}
    assert fwd.json()["call_forward"] == stored
    uri = call("PATCH", api, f"{url}/alice", a, json={"call_forward": {
        "to": "sip:desk@example.com"}})
    assert uri.json()["call_forward"]["uri"] == "sip:desk@example.com"
    assert uri.json()["call_forward"]["always"] is True
    for wrong, field in (({"call_forward": {"to": "12ab"}}, "call_forward"),
                         ({"call_forward": {"to": "1", "when": ["sometimes"]}}, "call_forward"),
                         ({"caller_id": {"number": "1"}}, "caller_id"),
                         ({}, "_schema")):
        refused = call("PATCH", api, f"{url}/alice", a, json=wrong)
        assert refused.status_code == 422 and field in fields_of(refused), (wrong, refused.text)
    off = call("PATCH", api, f"{url}/alice", a, json={"call_forward": {"to": None},
                                                      "do_not_disturb": False,
                                                      "voicemail_box": "1001"})
    assert off.json()["call_forward"] == {"enabled": False}
    assert off.json()["do_not_disturb"] is False and off.json()["voicemail_box"] == "1001"
    one = call("GET", api, f"{url}/ALICE", a)
    assert one.status_code == 200 and one.json()["devices"] == ["1000"]
    assert call("GET", api, f"{url}/nobody", a).status_code == 404
    assert call("GET", api, f"{url}/..%2Fx", a).status_code == 404

    call("POST", api, url, a, json={"username": "carol"})
    assert call("DELETE", api, f"{url}/carol", a).status_code == 204
    assert call("GET", api, f"{url}/carol", a).status_code == 404
    assert call("DELETE", api, f"{url}/carol", a).status_code == 404


# --- ring groups --------------------------------------------------------------------------

def test_ring_groups(api: str, tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    if call("GET", api, f"/v1/accounts/{a.id}/users/alice", a).status_code == 404:
        user_ops.create_user(a.realm, "alice")
        provisioning.create_device(a.realm, "1000", password="pw")
    url = f"/v1/accounts/{a.id}/groups/sales"
    body = {"members": [{"type": "device", "id": "1000"},
                        {"type": "user", "id": "alice", "timeout": 20, "delay": 5}],
            "strategy": "sequential", "timeout": 40}
    made = call("PUT", api, url, a, json=body)
    assert made.status_code == 201, made.text
    saved = user_ops.get_group(a.realm, "sales")
    assert saved["members"] == body["members"] and saved["strategy"] == "sequential"
    assert saved["timeout"] == 40
    again = call("PUT", api, url, a, json={"members": [{"type": "number", "id": "+14155550100"}]})
    assert again.status_code == 200 and again.json()["strategy"] == "simultaneous"
    assert user_ops.get_group(a.realm, "sales")["members"] == [
        {"type": "number", "id": "+14155550100"}]
    assert call("GET", api, url, a).json()["id"] == saved["_id"]
    assert [g["name"] for g in call("GET", api, f"/v1/accounts/{a.id}/groups", a
                                    ).json()["data"]] == ["sales"]
    missing = call("PUT", api, url, a, json={"members": [{"type": "device", "id": "4040"}]})
    assert missing.status_code == 400 and "members" in fields_of(missing)
    assert "4040" in missing.json()["message"]
    kind = call("PUT", api, url, a, json={"members": [{"type": "fax", "id": "1"}],
                                          "strategy": "random"})
    assert kind.status_code == 422 and set(fields_of(kind)) == {"members", "strategy"}
    empty = call("PUT", api, url, a, json={"members": []})
    assert empty.status_code == 422 and "members" in fields_of(empty)
    assert call("DELETE", api, url, a).status_code == 204
    assert call("GET", api, url, a).status_code == 404
    assert call("DELETE", api, url, a).status_code == 404


# --- callflows ----------------------------------------------------------------------------

def test_callflows_are_checked_by_the_callflow_schema(api: str,
                                                      tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    if call("GET", api, f"/v1/accounts/{a.id}/users/alice", a).status_code == 404:
        user_ops.create_user(a.realm, "alice")
        provisioning.create_device(a.realm, "1000", password="pw")
    url = f"/v1/accounts/{a.id}/callflows"
    made = call("POST", api, url, a, json={
        "name": "desk", "numbers": ["3100"],
        "flow": {"module": "device", "data": {"username": "1000"},
                 "children": {"_": {"module": "voicemail", "data": {"mailbox": "1001"}}}}})
    assert made.status_code == 201, made.text
    cf_id = made.json()["id"]
    assert cf_ops.find(a.realm, "3100")["_id"] == cf_id     # what `whistle callflow show` reads
    assert made.json()["numbers"] == ["3100"]
    bad = call("POST", api, url, a, json={"numbers": ["3101"], "flow": {
        "module": "menu", "data": {}, "children": {
            "1": {"module": "ring_group", "data": {"members": [{"type": "device", "id": "1000"}],
                                                   "timeout": "soon"}},
            "2": {"module": "dance"},
            "3": {"module": "user", "data": {"username": "nobody"}}}}})
    assert bad.status_code == 422, bad.text
    errors = fields_of(bad)
    assert errors["flow.data.greeting"] == ["missing"]
    assert "integer" in errors["flow.children.1.data.timeout"][0]
    assert errors["flow.children.2.module"][0].startswith("unknown module")
    taken = call("POST", api, url, a, json={"numbers": ["3100"],
                                            "flow": {"module": "hangup"}})
    assert taken.status_code == 422 and cf_id in taken.json()["errors"]["json"]["numbers.0"][0]
    ghost = call("POST", api, url, a, json={"numbers": ["3102"], "flow": {
        "module": "user", "data": {"username": "nobody"}}})
    assert ghost.status_code == 422 and "flow.data.username" in fields_of(ghost)
    shape = call("POST", api, url, a, json={"numbers": "3103", "flow": [], "_id": "x"})
    assert shape.status_code == 422 and "_id" in fields_of(shape)
    assert call("POST", api, url, a, data="{", headers={"Content-Type": "application/json"}
                ).status_code in (400, 422)
    assert cf_ops.list_all(a.realm) == [cf_ops.find(a.realm, cf_id)]   # nothing else written

    by_number = call("GET", api, f"{url}/3100", a)
    assert by_number.status_code == 200 and by_number.json()["id"] == cf_id
    replaced = call("PUT", api, f"{url}/{cf_id}", a, json={
        "numbers": ["3100", "3104"], "flow": {"module": "user", "data": {"username": "alice"}}})
    assert replaced.status_code == 200, replaced.text
    assert cf_ops.find(a.realm, "3104")["flow"]["module"] == "user"
    still = call("PUT", api, f"{url}/{cf_id}", a, json={"flow": {"module": "user"}})
    assert still.status_code == 422 and "flow.data.username" in fields_of(still)
    assert cf_ops.find(a.realm, cf_id)["flow"]["data"] == {"username": "alice"}
    assert call("PUT", api, f"{url}/{uuid.uuid4().hex}", a,
                json={"flow": {"module": "hangup"}}).status_code == 404
    listed = call("GET", api, url, a).json()["data"]
    assert [c["id"] for c in listed] == [cf_id]
    assert call("DELETE", api, f"{url}/{cf_id}", a).status_code == 204
    assert call("GET", api, f"{url}/3100", a).status_code == 404
    assert call("DELETE", api, f"{url}/{cf_id}", a).status_code == 404


# --- voicemail ----------------------------------------------------------------------------

def test_voicemail_boxes_messages_and_greetings(api: str, tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    if call("GET", api, f"/v1/accounts/{a.id}/users/alice", a).status_code == 404:
        user_ops.create_user(a.realm, "alice")
    url = f"/v1/accounts/{a.id}/voicemail"
    SECRETS.extend(["482915", "739164"])
    made = call("POST", api, url, a, json={"mailbox": "1001", "owner": "alice",
                                           "pin": "482915", "email": ["alice@example.com"]})
    assert made.status_code == 201, made.text
    assert "482915" not in made.text and "pin_hash" not in made.text
    assert made.json()["has_pin"] is True and made.json()["owner_id"]
    assert user_ops.get_user(a.realm, "alice")["voicemail_box"] == "1001"
    dup = call("POST", api, url, a, json={"mailbox": "1001"})
    assert dup.status_code == 409 and "mailbox" in fields_of(dup)
    bad = call("POST", api, url, a, json={"mailbox": "10 01", "pin": "99",
                                          "email": ["not-an-address"]})
    assert bad.status_code == 422 and set(fields_of(bad)) == {"mailbox", "pin", "email"}
    assert "99" not in bad.text      # a PIN is never echoed, even a refused one
    nobody = call("POST", api, url, a, json={"mailbox": "1002", "owner": "nobody"})
    assert nobody.status_code == 400 and "owner" in fields_of(nobody)

    pin = call("PUT", api, f"{url}/1001/pin", a, json={"pin": "739164"})
    assert pin.status_code == 204 and pin.text == ""
    _, box = vm_ops.get_box(a.realm, "1001")
    assert vm.pin_ok(box, "739164") and not vm.pin_ok(box, "482915")
    short = call("PUT", api, f"{url}/1001/pin", a, json={"pin": "1"})
    assert short.status_code == 422 and "pin" in fields_of(short)
    assert call("PUT", api, f"{url}/9999/pin", a, json={"pin": "1234"}).status_code == 404

    first, second = add_message(a.realm, "1001"), add_message(a.realm, "1001", caller="2002")
    box_now = call("GET", api, f"{url}/1001", a).json()
    assert (box_now["new"], box_now["saved"]) == (2, 0)
    listed = call("GET", api, f"{url}/1001/messages", a).json()["data"]
    assert [m["id"] for m in listed] == [first, second]
    assert listed[0]["caller_id_number"] == "2000" and listed[0]["folder"] == "new"
    audio = call("GET", api, f"{url}/1001/messages/{first}/audio", a)
    assert audio.status_code == 200 and audio.headers["Content-Type"] == "audio/wav"
    assert audio.content == MESSAGE
    heard = call("PATCH", api, f"{url}/1001/messages/{first}", a, json={"folder": "saved"})
    assert heard.status_code == 200 and heard.json()["folder"] == "saved"
    assert vm.counts(box["pvt_account_db"], box["_id"]) == {"new": 1, "saved": 1}
    new_only = call("GET", api, f"{url}/1001/messages", a, params={"folder": "new"})
    assert [m["id"] for m in new_only.json()["data"]] == [second]
    folder = call("GET", api, f"{url}/1001/messages", a, params={"folder": "trash"})
    assert folder.status_code == 422 and "folder" in folder.json()["errors"]["query"]
    wrong = call("PATCH", api, f"{url}/1001/messages/{first}", a, json={"folder": "recording"})
    assert wrong.status_code == 422
    assert call("DELETE", api, f"{url}/1001/messages/{first}", a).status_code == 204
    assert vm.message(box["pvt_account_db"], first) is None
    assert call("GET", api, f"{url}/1001/messages/{first}", a).status_code == 404
    assert call("GET", api, f"{url}/1001/messages/{first}/audio", a).status_code == 404
    assert call("GET", api, f"{url}/1001/messages/not-hex", a).status_code == 404

    assert call("GET", api, f"{url}/1001/greeting", a).status_code == 404
    greeting = put_audio(api, f"{url}/1001/greeting", a, WAV)
    assert greeting.status_code == 200, greeting.text
    assert greeting.json()["has_greeting"] is True
    assert call("GET", api, f"{url}/1001/greeting", a).content == WAV
    _, box = vm_ops.get_box(a.realm, "1001")
    assert box["pvt_media"][vm.GREETING_FILE]["length_ms"] == 500
    assert put_audio(api, f"{url}/1001/greeting", a, WAV, "text/plain").status_code == 415
    assert put_audio(api, f"{url}/1001/greeting", a, b"RIFF\0\0\0\0WAVEjunk" * 10
                     ).status_code == 415
    big = put_audio(api, f"{url}/1001/greeting", a, mediakit.wav_bytes(13))   # 208 kB
    assert big.status_code == 413 and str(LIMIT) in big.json()["message"]
    assert put_audio(api, f"{url}/1001/greeting", a, b"").status_code == 400
    assert call("GET", api, f"{url}/1001/greeting", a).content == WAV      # unchanged
    boxes = call("GET", api, url, a).json()["data"]
    assert [(b["mailbox"], b["new"], b["saved"], b["has_greeting"]) for b in boxes] == [
        ("1001", 1, 0, True)]
    assert "pin" not in str(boxes).replace("has_pin", "")


# --- prompts ------------------------------------------------------------------------------

def test_prompts_of_an_account_and_of_the_system(api: str,
                                                 tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    url = f"/v1/accounts/{a.id}/prompts"
    made = put_audio(api, f"{url}/vm-goodbye", a, WAV)
    assert made.status_code == 201, made.text
    assert made.json()["length_ms"] == 500
    again = put_audio(api, f"{url}/vm-goodbye", a, mediakit.wav_bytes(0.25), "audio/x-wav")
    assert again.status_code == 200 and again.json()["length_ms"] == 250
    assert call("GET", api, f"{url}/vm-goodbye", a).content == mediakit.wav_bytes(0.25)
    assert [p["name"] for p in call("GET", api, url, a).json()["data"]] == ["vm-goodbye"]
    assert put_audio(api, f"{url}/vm-x", a, WAV, "application/json").status_code == 415
    assert put_audio(api, f"{url}/vm-x", a, b"not audio at all").status_code == 415
    assert put_audio(api, f"{url}/vm-x", a, b"\0" * (LIMIT + 1)).status_code == 413
    assert call("GET", api, f"{url}/vm-x", a).status_code == 404
    assert put_audio(api, f"{url}/-x", a, WAV).status_code == 404     # not a name
    ops = system_headers()
    SECRETS.append(ops["Authorization"][7:])
    name = f"test-{uuid.uuid4().hex[:10]}"
    assert put_audio(api, f"/v1/prompts/{name}", a, WAV).status_code == 403
    system = put_audio(api, f"/v1/prompts/{name}", ops, WAV)
    assert system.status_code == 201, system.text
    assert name in [p["name"] for p in call("GET", api, "/v1/prompts", ops).json()["data"]]
    assert call("GET", api, f"/v1/prompts/{name}", ops).content == WAV
    assert call("GET", api, f"/v1/prompts/{name}", a).status_code == 403
    assert name not in [p["name"] for p in call("GET", api, url, a).json()["data"]]


# --- click-to-call and call records -------------------------------------------------------

def test_click_to_call_rings_the_device_then_routes(api: str, tenants: tuple[Tenant, Tenant],
                                                    switch: Switch,  # noqa: F811
                                                    standin: Any) -> None:  # noqa: ANN401
    a, _ = tenants
    for user in ("1100", "1101"):
        provisioning.create_device(a.realm, user, password="pw")
    switch.register(a.realm, "1100", a.id)
    support.wait_until(lambda: registrations.contacts(a.realm, "1100"), 15,
                       what="1100 registered")
    url = f"/v1/accounts/{a.id}/click-to-call"
    placed = call("POST", api, url, a, json={"from": "1100", "to": "2001", "timeout": 20})
    assert placed.status_code == 201, placed.text
    call_id = placed.json()["call_id"]
    (bgapi,) = [c for c in standin.commands if c.verb == "bgapi" and call_id in c.args]
    assert bgapi.args.startswith("originate ") and bgapi.args.endswith("&transfer(2001)")
    assert "sip:1100@127.0.0.1:5070" in bgapi.args
    idle = call("POST", api, url, a, json={"from": "1101", "to": "2001"})
    assert idle.status_code == 409 and "not registered" in idle.json()["message"]
    assert call("POST", api, url, a, json={"from": "1999", "to": "2001"}).status_code == 404
    bad = call("POST", api, url, a, json={"from": "1100", "to": "20 01;hangup",
                                          "timeout": 1})
    assert bad.status_code == 422 and set(fields_of(bad)) == {"to", "timeout"}


def test_every_leg_leaves_one_record_that_the_api_and_cli_return(
        api: str, tenants: tuple[Tenant, Tenant], switch: Switch) -> None:  # noqa: F811
    a, _ = tenants
    since = time.time() - 1
    caller = switch.ring(a.id, "1000", "2000")
    callee = switch.ring(a.id, "1000", "2000")
    switch.calls[callee].update({"Call-Direction": "outbound",
                                 "Other-Leg-Unique-ID": caller})
    switch.calls[caller]["Other-Leg-Unique-ID"] = callee
    switch.answer(callee)
    switch.answer(caller)
    switch.hangup(callee)
    switch.hangup(caller)
    path = f"/v1/accounts/{a.id}/cdrs"

    def both() -> list[dict[str, Any]] | None:
        found = [r for r in get(api, path, a, since=str(since)).json()["data"]
                 if r["id"] in (caller, callee)]
        return found if len(found) == 2 else None

    records = support.wait_until(both, 20, what="a record of each leg")
    by_id = {r["id"]: r for r in records}
    assert by_id[caller]["other_leg_call_id"] == callee
    assert by_id[callee]["other_leg_call_id"] == caller
    assert by_id[callee]["direction"] == "outbound"
    time.sleep(1.5)   # a redelivered or late event would show up as a second record
    again = [r["id"] for r in get(api, path, a, since=str(since)).json()["data"]]
    assert sorted(again) == sorted([caller, callee])
    assert get(api, f"{path}/{callee}", a).json()["id"] == callee
    cli = subprocess.run([WHISTLE, "cdr", "list", "--realm", a.realm, "--since",
                          str(int(since)), "--csv"], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ), cwd=support.ROOT, check=False)
    assert cli.returncode == 0, cli.stderr
    rows = list(csv.DictReader(io.StringIO(cli.stdout)))
    ids = [r.get("id") or r.get("call_id") for r in rows]
    assert sorted(ids) == sorted([caller, callee])


# --- isolation ----------------------------------------------------------------------------

def _fill(path: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    return path


BODIES = {
    ("post", "/v1/accounts/{account_id}/users"): {"username": "intruder"},
    ("patch", "/v1/accounts/{account_id}/users/{username}"): {"do_not_disturb": True},
    ("post", "/v1/accounts/{account_id}/users/{username}/devices"): {"device": "7100"},
    ("put", "/v1/accounts/{account_id}/groups/{name}"): {
        "members": [{"type": "number", "id": "+14155550199"}]},
    ("post", "/v1/accounts/{account_id}/callflows"): {"numbers": ["3999"],
                                                       "flow": {"module": "hangup"}},
    ("put", "/v1/accounts/{account_id}/callflows/{callflow_id}"): {
        "numbers": ["3200"], "flow": {"module": "hangup"}},
    ("post", "/v1/accounts/{account_id}/voicemail"): {"mailbox": "3999"},
    ("put", "/v1/accounts/{account_id}/voicemail/{mailbox}/pin"): {"pin": "0000"},
    ("patch", "/v1/accounts/{account_id}/voicemail/{mailbox}/messages/{message_id}"): {
        "folder": "saved"},
    ("post", "/v1/accounts/{account_id}/click-to-call"): {"from": "7100", "to": "2000"},
}
AUDIO = {("put", "/v1/accounts/{account_id}/voicemail/{mailbox}/greeting"),
         ("put", "/v1/accounts/{account_id}/prompts/{name}"),
         ("put", "/v1/prompts/{name}")}
#: by name, in the key's own account: B's name creates A's own (B's is untouched)
OWN_BY_NAME = {("put", "/v1/accounts/{account_id}/groups/{name}"),
               ("put", "/v1/accounts/{account_id}/prompts/{name}")}


def test_an_account_key_is_confined_to_its_account(api: str, tenants: tuple[Tenant, Tenant],
                                                   switch: Switch) -> None:  # noqa: F811
    a, b = tenants
    bob = user_ops.create_user(b.realm, "bob")
    device = provisioning.create_device(b.realm, "7100", password="theirs")
    user_ops.add_device(b.realm, "bob", "7100")
    user_ops.save_group(b.realm, "bsales", [{"type": "device", "id": "7100"}])
    flow = cf_ops.save(b.realm, {"numbers": ["3200"], "flow": {
        "module": "device", "data": {"username": "7100"}}})
    box = vm_ops.create_box(b.realm, "2001", owner="bob", pin="864213")
    SECRETS.append("864213")
    message = add_message(b.realm, "2001")
    vm_ops.store_greeting(b.realm, "2001", WAV)
    prompt = f"bprompt-{uuid.uuid4().hex[:8]}"
    vm_ops.store_prompt(WAV, name=prompt, realm=b.realm)
    switch.register(b.realm, "7100", b.id)
    support.wait_until(lambda: registrations.contacts(b.realm, "7100"), 15,
                       what="7100 registered")
    theirs = {"username": "bob", "name": "bsales", "callflow_id": flow["_id"],
              "mailbox": "2001", "message_id": message}
    by_kind = {"/groups/": "bsales", "/prompts/": prompt}
    secrets = [b.realm, b.id, bob["_id"], device["_id"], flow["_id"], box["_id"], message]
    doc = requests.get(f"{api}/v1/openapi.json", timeout=10).json()
    tried: set[tuple[str, str]] = set()
    for path, item in doc["paths"].items():
        for method in ("get", "post", "patch", "delete", "put"):   # put last: see below
            if method not in item or "pbx" not in item[method].get("tags", []):
                continue
            ids = dict(theirs)
            for part, value in by_kind.items():
                if part in path:
                    ids["name"] = value
            accounts = (b.id, a.id) if path.count("{") >= 2 else (b.id,)
            if "{account_id}" not in path:
                accounts = ("-",)
            for account in accounts:
                url = api + _fill(path, {"account_id": account, **ids})
                if (method, path) in AUDIO:
                    resp = requests.request(method, url, timeout=30, data=mediakit.wav_bytes(1),
                                            headers={**a.headers, "Content-Type": "audio/wav"})
                else:
                    resp = requests.request(method, url, headers=a.headers, timeout=30,
                                            json=BODIES.get((method, path)))
                tried.add((method, path))
                content = resp.text if "json" in resp.headers.get("Content-Type", "") else \
                    resp.content.decode("latin-1")
                if "{account_id}" not in path:
                    assert resp.status_code == 403, (method, url, resp.status_code, content)
                elif account == a.id and (method, path) in OWN_BY_NAME:
                    assert resp.status_code == 201, (method, url, resp.status_code, content)
                else:
                    assert resp.status_code == 404, (method, url, resp.status_code, content)
                for secret in secrets:
                    if secret in url:
                        continue  # an id A typed in the URL
                    assert secret not in content, (method, url, secret)
                assert content.find("RIFF") == -1, (method, url)
    pbx_ops = {(m, p) for p, item in doc["paths"].items() for m in item
               if m in ("get", "post", "patch", "put", "delete")
               and "pbx" in item[m].get("tags", [])}
    assert tried == pbx_ops and len(tried) >= 30
    # the names A used acted on A's own account
    assert user_ops.get_group(a.realm, "bsales")["members"] == [
        {"type": "number", "id": "+14155550199"}]
    assert prompt in [p["name"] for p in vm_ops.list_prompts(a.realm)]
    # nothing of B's changed
    assert user_ops.get_user(b.realm, "bob")["do_not_disturb"] is False
    assert user_ops.user_devices(b.realm, bob["_id"]) == ["7100"]
    assert user_ops.get_group(b.realm, "bsales")["members"] == [{"type": "device", "id": "7100"}]
    assert cf_ops.find(b.realm, "3200")["flow"]["module"] == "device"
    _, box_now = vm_ops.get_box(b.realm, "2001")
    assert vm.pin_ok(box_now, "864213")
    assert vm_ops.greeting_audio(b.realm, "2001") == WAV
    assert [m["folder"] for m in vm_ops.messages(b.realm, "2001")] == ["new"]
    assert vm_ops.prompt_audio(b.realm, prompt)[0] == WAV
    assert not [c for c in switch.standin.commands if c.verb == "bgapi" and "7100" in c.args]
    # the operator's key reaches both
    ops = system_headers()
    SECRETS.append(ops["Authorization"][7:])
    assert call("GET", api, f"/v1/accounts/{b.id}/users/bob", ops).json()["devices"] == ["7100"]
    assert call("GET", api, f"/v1/accounts/{b.id}/voicemail/2001/messages/{message}/audio",
                ops).content == MESSAGE
