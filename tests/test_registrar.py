"""The registrar whapp end to end: a client process → RabbitMQ → Celery worker → CouchDB/Redis.

Each test provisions its own account (unique realm) through the same functions as the CLI,
sends requests by the calling convention (task ``registrar.<event>`` on ``callmgr`` with the
docs/api.md key, ``Server-ID`` = the client's queue) and checks the answer on that queue.
"""

from __future__ import annotations

import subprocess
import time

import pytest

import schemas
from schemas import contracts
from schemas.keys import authn_req_key
from tests import support
from whistle_tasks.core.couch import get_couch
from whistle_tasks.ops import provisioning

pytestmark = pytest.mark.usefixtures("whapp_worker")


@pytest.fixture()
def realm() -> str:
    name = f"{support.unique('r')}.example.com"
    provisioning.create_account("Test", name)
    return name


def authn(client: support.Client, realm: str, user: str, **extra: str) -> dict:
    msg = schemas.build("authn_req", {
        "Auth-Realm": realm, "Auth-User": user, "From": f"sip:{user}@{realm}",
        "To": f"sip:{user}@{realm}", "Method": "REGISTER", **extra}, **{"App-Name": "test"})
    return client.request(contracts.AUTHN, msg)


def reg_success(client: support.Client, realm: str, user: str, contact: str,
                expires: int = 300, timestamp: float | None = None) -> None:
    msg = schemas.build("reg_success", {
        "Realm": realm, "Username": user, "Contact": contact, "Expires": expires,
        "Event-Timestamp": timestamp or time.time(), "User-Agent": "test-phone",
        "Network-IP": "192.0.2.10", "Network-Port": "5060"}, **{"App-Name": "test"})
    client.send(contracts.REG_SUCCESS, msg)


def reg_query(client: support.Client, **fields: object) -> dict:
    msg = schemas.build("reg_query", dict(fields), **{"App-Name": "test"})
    return client.request(contracts.REG_QUERY, msg)


def registration_docs(realm: str) -> list[dict]:
    rows = get_couch().view("registrations", "registrations", "by_realm", key=realm,
                            reduce=False, include_docs=True)
    return [r["doc"] for r in rows if r.get("doc")]  # a doc deleted meanwhile has none


def test_password_user_gets_password_and_channel_vars(client: support.Client, realm: str) -> None:
    device = provisioning.create_device(realm, "1000", password="s3cret-1000")
    answer = authn(client, realm, "1000")
    assert answer["Event-Name"] == "authn_resp"
    assert answer["Auth-Method"] == "password"
    assert answer["Auth-Password"] == "s3cret-1000"
    ccvs = answer["Custom-Channel-Vars"]
    assert ccvs["Username"] == "1000" and ccvs["Realm"] == realm
    assert ccvs["Authorizing-ID"] == device["_id"]
    assert ccvs["Account-ID"] == device["pvt_account_id"]
    assert ccvs["Inception"] == "on-net"
    schemas.validate(answer)


def test_a1_hash_user_gets_a1_hash(client: support.Client, realm: str) -> None:
    a1 = provisioning.a1_hash("1001", realm, "secret1001")
    provisioning.create_device(realm, "1001", a1=a1)
    answer = authn(client, realm, "1001")
    assert (answer["Event-Name"], answer["Auth-Method"], answer["Auth-Password"]) == \
        ("authn_resp", "a1-hash", a1)


def test_msg_id_is_echoed_and_user_realm_lowercased(client: support.Client, realm: str) -> None:
    provisioning.create_device(realm, "alice", password="pw")
    msg_id = "feedface" * 4
    msg = schemas.build("authn_req", {"Auth-Realm": realm.upper(), "Auth-User": "ALICE",
                                      "From": "x", "To": "y", "Msg-ID": msg_id},
                        **{"App-Name": "test"})
    answer = client.request(contracts.AUTHN, msg)
    assert answer["Msg-ID"] == msg_id
    assert answer["Auth-Password"] == "pw"


def test_unknown_user_realm_ip_literal_and_unknown_auth_user(client: support.Client,
                                                               realm: str) -> None:
    provisioning.create_device(realm, "2000", password="pw2000")
    assert authn(client, realm, "nobody")["Event-Name"] == "authn_err"
    assert authn(client, "unknown-realm.example.org", "2000")["Event-Name"] == "authn_err"
    # an IP realm takes the domain of To; an `unknown` user takes the user of To
    msg = schemas.build("authn_req", {
        "Auth-Realm": "192.0.2.1", "Auth-User": "unknown", "From": f"sip:2000@{realm}",
        "To": f"<sip:2000@{realm}:5060>"}, **{"App-Name": "test"})
    answer = client.request(contracts.AUTHN, msg)
    assert answer["Event-Name"] == "authn_resp" and answer["Auth-Password"] == "pw2000"


def test_disabled_device_and_account_refused_at_once(client: support.Client, realm: str) -> None:
    provisioning.create_device(realm, "3000", password="pw3000")
    assert authn(client, realm, "3000")["Event-Name"] == "authn_resp"   # now cached
    provisioning.set_device_enabled(realm, "3000", False)
    assert authn(client, realm, "3000")["Event-Name"] == "authn_err"
    provisioning.set_device_enabled(realm, "3000", True)
    assert authn(client, realm, "3000")["Event-Name"] == "authn_resp"
    provisioning.set_account_enabled(realm, False)
    assert authn(client, realm, "3000")["Event-Name"] == "authn_err"


def test_cli_change_invalidates_cache(client: support.Client, realm: str) -> None:
    """The CLI (another process) changes a device; the very next authn_req sees it."""
    whistle = str(support.VENV_BIN / "whistle")
    subprocess.run([whistle, "device", "create", "--realm", realm, "--username", "4000",
                    "--password", "old-pw"], check=True, capture_output=True)
    assert authn(client, realm, "4000")["Auth-Password"] == "old-pw"
    provisioning.update_device(realm, "4000", {"sip": {"username": "4000",
                                                       "password": "new-pw"}})
    assert authn(client, realm, "4000")["Auth-Password"] == "new-pw"
    subprocess.run([whistle, "device", "disable", "--realm", realm, "--username", "4000"],
                   check=True, capture_output=True)
    assert authn(client, realm, "4000")["Event-Name"] == "authn_err"
    subprocess.run([whistle, "device", "delete", "--realm", realm, "--username", "4000"],
                   check=True, capture_output=True)
    assert authn(client, realm, "4000")["Event-Name"] == "authn_err"
    # a device created after a negative answer is accepted on the next request
    assert authn(client, realm, "4001")["Event-Name"] == "authn_err"
    provisioning.create_device(realm, "4001", password="pw")
    assert authn(client, realm, "4001")["Event-Name"] == "authn_resp"


def test_registration_store_replace_query_deregister(client: support.Client, realm: str) -> None:
    reg_success(client, realm, "1000", '"" <sip:1000@192.0.2.10:5060;transport=UDP>')
    support.wait_until(lambda: len(registration_docs(realm)) == 1, what="registration stored")
    answer = reg_query(client, Realm=realm, Username="1000")
    assert answer["Event-Name"] == "reg_query_resp"
    (reg,) = answer["Fields"]
    assert reg["Contact"] == "sip:1000@192.0.2.10:5060;transport=UDP"
    assert reg["User-Agent"] == "test-phone"
    # the same reg_success again: still one document (idempotent)
    reg_success(client, realm, "1000", '"" <sip:1000@192.0.2.10:5060;transport=UDP>')
    # a new contact replaces the old one
    reg_success(client, realm, "1000", "<sip:1000@198.51.100.7:5062>")
    support.wait_until(lambda: [d["Contact"] for d in registration_docs(realm)]
                       == ["sip:1000@198.51.100.7:5062"], what="contact replaced")
    reg_success(client, realm, "1001", "<sip:1001@198.51.100.8>")
    support.wait_until(lambda: len(registration_docs(realm)) == 2, what="second user")
    assert reg_query(client, Realm=realm)["Count"] == 2
    counted = reg_query(client, Realm=realm, **{"Count-Only": True})
    assert counted["Count"] == 2 and "Fields" not in counted
    # Expires = 0 deregisters
    reg_success(client, realm, "1000", "<sip:1000@198.51.100.7:5062>", expires=0)
    support.wait_until(lambda: len(registration_docs(realm)) == 1, what="deregistered")
    assert reg_query(client, Realm=realm, Username="1000")["Event-Name"] == "reg_query_error"


def test_reg_query_fields_and_nothing_found(client: support.Client, realm: str) -> None:
    reg_success(client, realm, "5000", "<sip:5000@192.0.2.50>")
    support.wait_until(lambda: registration_docs(realm), what="stored")
    answer = reg_query(client, Realm=realm, Username="5000", Fields=["Contact", "Expires"])
    assert answer["Fields"] == [{"Contact": "sip:5000@192.0.2.50", "Expires": 300}]
    assert reg_query(client, Realm=f"none-{realm}")["Event-Name"] == "reg_query_error"


def test_reg_flush(client: support.Client, realm: str) -> None:
    for user in ("6000", "6001", "6002"):
        reg_success(client, realm, user, f"<sip:{user}@192.0.2.60>")
    support.wait_until(lambda: len(registration_docs(realm)) == 3, what="three stored")
    flush = schemas.build("reg_flush", {"Realm": realm, "Username": "6001"},
                          **{"App-Name": "test"})
    client.send(contracts.REG_FLUSH, flush)
    support.wait_until(lambda: len(registration_docs(realm)) == 2, what="user flushed")
    flush = schemas.build("reg_flush", {"Realm": realm}, **{"App-Name": "test"})
    client.send(contracts.REG_FLUSH, flush)
    support.wait_until(lambda: not registration_docs(realm), what="realm flushed")
    assert reg_query(client, Realm=realm)["Event-Name"] == "reg_query_error"


def test_expiry_by_the_beat_task(client: support.Client, realm: str) -> None:
    """A real celery beat (1 s schedule) sends registrar.expire; the worker removes the
    registrations whose Expires + deviation have passed, documents and cache."""
    old = time.time() - 1000  # expired long ago (300 s + 180 s deviation)
    reg_success(client, realm, "7000", "<sip:7000@192.0.2.70>", expires=300, timestamp=old)
    reg_success(client, realm, "7001", "<sip:7001@192.0.2.71>", expires=3600)
    support.wait_until(lambda: len(registration_docs(realm)) == 2, what="both stored")
    assert reg_query(client, Realm=realm, Username="7000")["Event-Name"] == "reg_query_error"
    beat = support.Process(
        "beat", [str(support.VENV_BIN / "celery"), "-A", "whistle_tasks", "beat", "-l", "INFO",
                 "-s", str(support.OUTPUT / "celerybeat-schedule-test")],
        env={"WHISTLE_REG_EXPIRY_INTERVAL": "1"}, ready="beat: Starting")
    with support.running(beat):
        support.wait_until(lambda: [d["Username"] for d in registration_docs(realm)] == ["7001"],
                           timeout=20, what="expired registration removed by beat")
    assert reg_query(client, Realm=realm, Username="7001")["Event-Name"] == "reg_query_resp"


def test_malformed_messages_get_clear_errors_and_are_not_redelivered(
        client: support.Client, realm: str, whapp_worker: support.Process) -> None:
    provisioning.create_device(realm, "8000", password="pw")
    # missing required header and a bad value: an `error` answer names them
    bad = {"Event-Category": "directory", "Event-Name": "authn_req", "App-Name": "test",
           "App-Version": "1", "Auth-Realm": realm, "To": "x", "Msg-ID": "bad1",
           "Method": 42}
    answer = client.request(contracts.AUTHN, bad)
    assert answer["Event-Category"] == "error"
    assert "Auth-User" in answer["Error-Message"] and "From" in answer["Error-Message"]
    # not JSON at all, and JSON that is not an object
    client.send_raw(b"{not json", authn_req_key(realm), task="registrar.authn_req")
    client.send_raw(b'[["just a string"], {}, {}]', authn_req_key(realm),
                    task="registrar.authn_req")
    support.wait_until(lambda: "registrar.authn_req rejected: expected one API message"
                       in whapp_worker.output(), what="logged rejection")
    support.wait_until(lambda: "bad1" in whapp_worker.output(), what="logged bad message")
    # the worker keeps serving, and nothing sits in the queue being redelivered
    assert authn(client, realm, "8000")["Event-Name"] == "authn_resp"
    from kombu import Connection

    from whistle_tasks.core.amqp import whapp_queue
    from whistle_tasks.core.config import settings

    with Connection(settings.amqp_url) as conn:
        def queue_idle() -> bool:
            _, messages, _ = whapp_queue("registrar")(conn.channel()).queue_declare(passive=True)
            return messages == 0
        support.wait_until(queue_idle, what="registrar queue empty")
    out = whapp_worker.output()
    assert out.count("body: '{not json'") == 1, "the undecodable message was redelivered"
    assert out.count("(Msg-ID bad1)") == 1
