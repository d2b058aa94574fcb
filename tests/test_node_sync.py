"""What a node holds, learnt each time the bridge connects (issue #9), FreeSWITCH replaced
at its event socket by the stand-in (which answers the inventory commands in FreeSWITCH's
captured formats), with a real bridge process, RabbitMQ, the registrar worker, CouchDB and
Redis.

- registrations made, expired or removed while the event socket was down are reconciled;
- (control of a call across a bridge restart: tests/test_node_sync_restart.py);
- a device change flushes FreeSWITCH's directory cache on the node (cacheable answers).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import schemas
from schemas import contracts
from tests import bridgekit, support, xmlcurl
from tests.esl_standin import EslStandIn
from whistle_tasks.data import registrations
from whistle_tasks.ops import provisioning

pytestmark = pytest.mark.usefixtures("whapp_worker")
BRIDGE_ENV = {"WHISTLE_DIRECTORY_CACHEABLE_MS": "60000"}


def contacts(realm: str, user: str) -> set[str]:
    registrations._local.clear_local()
    return {r["Contact"] for r in registrations.contacts(realm, user)}


def test_registrations_changed_while_disconnected_are_reconciled_on_reconnect(
        bridge: dict, standin: EslStandIn, realm: str, client: support.Client) -> None:
    # Whistle knows a phone of 1000 on this node (its REGISTER event came)...
    old = schemas.build("reg_success", {
        "Realm": realm, "Username": "1000", "Contact": "<sip:1000@192.0.2.90:5060>",
        "Expires": 3600, "Event-Timestamp": time.time() - 60,
        "FreeSWITCH-Hostname": standin.hostname}, **{"App-Name": "test"})
    client.send(contracts.REG_SUCCESS, old)
    support.wait_until(lambda: contacts(realm, "1000"), what="the old phone stored")
    # ... then the event socket drops; meanwhile that phone's registration expires and two
    # phones of 1000 and one of 1001 register: their events go nowhere
    reconnects = bridgekit.metrics(bridge["port"]).get(
        f'whistle_bridge_esl_node_reconnects{{node="127.0.0.1:{standin.port}"}}', 0)
    standin.drop()
    standin.register("1000", realm, '"" <sip:1000@192.0.2.91:5060;transport=UDP>', 600)
    standin.register("1000", realm, '"Soft" <sip:1000@192.0.2.92:5062>', 600,
                     agent="softphone")
    standin.register("1001", realm, "<sip:1001@192.0.2.93:5060>", 600)
    # the bridge comes back, asks the node what it holds, the registrar reconciles
    support.wait_until(lambda: contacts(realm, "1000") == {
        "sip:1000@192.0.2.91:5060;transport=UDP", "sip:1000@192.0.2.92:5062"},
        timeout=20, what="1000's two phones learnt, the expired one removed")
    assert contacts(realm, "1001") == {"sip:1001@192.0.2.93:5060"}
    soft = next(r for r in registrations.contacts(realm, "1000") if "5062" in r["Contact"])
    assert soft["User-Agent"] == "softphone" and soft["FreeSWITCH-Hostname"] == standin.hostname
    assert 500 < soft["Expires"] <= 600
    after = bridgekit.metrics(bridge["port"]).get(
        f'whistle_bridge_esl_node_reconnects{{node="127.0.0.1:{standin.port}"}}', 0)
    assert after == reconnects + 1
    # one line per state change in the bridge's log, not several per attempt
    out = bridge["proc"].output()
    assert out.count(f"ESL 127.0.0.1:{standin.port}: down") >= 1
    assert "holds 3 registrations" in out
    standin.registrations.clear()


def test_a_device_change_flushes_freeswitchs_directory_cache(
        bridge: dict, standin: EslStandIn, fixtures_dir: Path, realm: str) -> None:
    """Answers are cacheable (BRIDGE_ENV): FreeSWITCH would keep a disabled device's
    password; the change broadcast makes the bridge flush it, as the phone spelt it."""
    assert "" in standin.flushed          # on connect: the whole cache (changes missed)
    provisioning.create_device(realm, "1000", password="pw-1000")
    spelt = realm.upper()                 # the phone writes the realm its own way
    status, xml = xmlcurl.post(bridge["port"], "/fs/directory",
                               bridgekit.sip_auth_body(fixtures_dir, spelt, "1000"))
    assert status == 200 and b'cacheable="60000"' in xml
    assert bridgekit.directory_user(xml)["params"]["password"] == "pw-1000"
    provisioning.set_device_enabled(realm, "1000", False)
    support.wait_until(lambda: f"id 1000 {spelt}" in standin.flushed, timeout=10,
                       what="FreeSWITCH's entry for 1000 flushed")
    assert f"id 1000 {realm}" in standin.flushed
    status, xml = xmlcurl.post(bridge["port"], "/fs/directory",
                               bridgekit.sip_auth_body(fixtures_dir, spelt, "1000"))
    assert bridgekit.directory_user(xml) is None     # refused at once
    before = len(standin.flushed)
    provisioning.set_account_enabled(realm, False)    # an account: everything
    support.wait_until(lambda: "" in standin.flushed[before:], timeout=10,
                       what="the whole cache flushed")
