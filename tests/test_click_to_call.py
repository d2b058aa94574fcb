"""``whistle call originate`` (click-to-call) through a real bridge process, FreeSWITCH
replaced at its event socket: the CLI asks for the call by the originate contract, the
bridge rings every phone of the caller at once and transfers the answered leg to the
callee's number (a routed call), the CLI prints the call id or why it failed."""

from __future__ import annotations

import subprocess
import time

import pytest

import schemas
from schemas import contracts
from tests import support
from tests.esl_standin import EslStandIn
from tests.test_dialstring import fs_run_dial
from whistle_tasks.data import registrations
from whistle_tasks.ops import provisioning

pytestmark = pytest.mark.usefixtures("whapp_worker")
WHISTLE = str(support.VENV_BIN / "whistle")


def register(client: support.Client, realm: str, user: str, contact: str) -> None:
    client.send(contracts.REG_SUCCESS, schemas.build("reg_success", {
        "Realm": realm, "Username": user, "Contact": contact, "Expires": 3600,
        "Event-Timestamp": time.time()}, **{"App-Name": "test"}))


def originate(realm: str, caller: str, callee: str) -> subprocess.CompletedProcess:
    return subprocess.run([WHISTLE, "call", "originate", "--realm", realm, "--from", caller,
                           "--to", callee, "--timeout", "20"],
                          capture_output=True, text=True, timeout=60)


def test_click_to_call_rings_the_caller_then_routes_to_the_callee(
        bridge: dict, standin: EslStandIn, realm: str, client: support.Client) -> None:
    device = provisioning.create_device(realm, "1000", password="pw")
    register(client, realm, "1000", "<sip:1000@192.0.2.71:5060>")
    register(client, realm, "1000", "<sip:1000@192.0.2.72:5062>")
    support.wait_until(lambda: len(registrations.contacts(realm, "1000")) == 2,
                       what="both phones of 1000")
    done = originate(realm, "1000", "2001")
    assert done.returncode == 0, done.stderr
    call = done.stdout.strip()
    (bgapi,) = [c for c in standin.commands if c.verb == "bgapi" and call in c.args]
    target, tail = bgapi.args.removeprefix("originate ").split(" ")
    assert tail == "&transfer(2001)"
    parsed = fs_run_dial(target.replace("\\s", " "))
    (group,) = parsed["groups"]       # one group: both phones ring at once
    assert sorted(leg["data"] for leg in group) == [
        "internal/sip:1000@192.0.2.71:5060", "internal/sip:1000@192.0.2.72:5062"]
    # the answered leg enters the dialplan as a call of device 1000
    assert parsed["globals"]["ecallmgr_Realm"] == realm
    assert parsed["globals"]["ecallmgr_Username"] == "1000"
    assert parsed["globals"]["ecallmgr_Authorizing-ID"] == device["_id"]
    assert parsed["globals"]["origination_uuid"] == call


def test_click_to_call_says_why_it_failed(bridge: dict, standin: EslStandIn, realm: str,
                                          client: support.Client) -> None:
    provisioning.create_device(realm, "1000", password="pw")
    failed = originate(realm, "1000", "2001")
    assert failed.returncode == 1 and "1000" in failed.stderr
    assert "not registered" in failed.stderr
    assert "no device 1009" in originate(realm, "1009", "2001").stderr
    register(client, realm, "1000", "<sip:1000@192.0.2.73:5060>")
    support.wait_until(lambda: registrations.contacts(realm, "1000"), what="1000 registered")
    standin.bgapi_results["originate"] = "-ERR NO_ANSWER\n"
    try:
        failed = originate(realm, "1000", "2001")
    finally:
        del standin.bgapi_results["originate"]
    assert failed.returncode == 1 and "NO_ANSWER" in failed.stderr, failed.stderr
    assert originate(realm, "1000", "20 01").returncode != 0
