"""Routing end to end: real dialplan bodies → bridge → router whapp (CouchDB numbers, the
registrar's registrations) → the dialplan XML FreeSWITCH would run.

Each outcome of issue #4: a bridge to the registered contact of a device, a carrier gateway
in e164 and npan, park for a whapp, 480 for a device that is not registered, 404 for an
unknown number; caller id, codecs, timeouts and SIP headers of the device/number documents
reach the dial string as channel variables.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import schemas
from schemas import contracts
from tests import support, xmlcurl
from tests.bridgekit import actions, dialplan_body
from tests.test_dialstring import fs_run_dial
from whistle_tasks.data import registrations
from whistle_tasks.ops import provisioning

pytestmark = pytest.mark.usefixtures("whapp_worker")


@pytest.fixture(scope="module", autouse=True)
def router_worker() -> Iterator[support.Process]:
    worker = support.start_worker("router", name="router", pool="threads", concurrency=8)
    yield worker
    worker.stop()


def register(client: support.Client, realm: str, user: str, contact: str) -> None:
    msg = schemas.build("reg_success", {
        "Realm": realm, "Username": user, "Contact": contact, "Expires": 3600,
        "Event-Timestamp": time.time(), "Profile-Name": "internal"}, **{"App-Name": "test"})
    client.send(contracts.REG_SUCCESS, msg)
    support.wait_until(lambda: any(r["Contact"] in contact
                                   for r in registrations.contacts(realm, user)),
                       timeout=10, what=f"{user}@{realm} registered at {contact}")


def dial(port: int, fixtures: Path, realm: str, number: str,
         extra: dict[str, str] | None = None) -> list[tuple[str, str | None]]:
    status, xml = xmlcurl.post(port, "/fs/dialplan",
                               dialplan_body(fixtures, realm, number, extra))
    assert status == 200
    return actions(xml)


def bridge_data(acts: list[tuple[str, str | None]]) -> list[str]:
    return [data or "" for app, data in acts if app == "bridge"]


def test_device_registered_gets_its_contact(bridge: dict, fixtures_dir: Path, realm: str,
                                            client: support.Client) -> None:
    provisioning.create_device(realm, "1001", password="pw",
                               extra={"codecs": ["PCMU", "OPUS"], "call_timeout": 25})
    provisioning.create_device(realm, "1000", password="pw",
                               extra={"caller_id": {"name": "Alice Smith", "number": "1000"}})
    provisioning.add_number("1001", realm, "device:1001",
                            options={"sip_headers": {"X-Whistle-Test": "yes"}})
    register(client, realm, "1001", '"" <sip:1001@192.0.2.55:5071;transport=UDP>')
    acts = dial(bridge["port"], fixtures_dir, realm, "1001",
                {"variable_ecallmgr_Username": "1000"})
    (data,) = bridge_data(acts)
    assert data.endswith("sofia/internal/sip:1001@192.0.2.55:5071;transport=UDP")
    # the caller id the operator set, as FreeSWITCH presents it on the leg (issue #15)
    assert "origination_caller_id_name=Alice" in data
    assert "origination_caller_id_number=1000" in data
    assert "codec_string=" in data and "PCMU" in data and "OPUS" in data
    assert "leg_timeout=25" in data
    assert "sip_h_X-Whistle-Test=yes" in data
    assert acts[-1] == ("hangup", "${originate_disposition}")


def test_every_phone_of_a_device_rings_at_once(bridge: dict, fixtures_dir: Path, realm: str,
                                               client: support.Client) -> None:
    """A desk phone and a softphone of one user: one bridge that rings both (issue #9)."""
    provisioning.create_device(realm, "1003", password="pw")
    provisioning.add_number("1003", realm, "device:1003")
    register(client, realm, "1003", "<sip:1003@192.0.2.61:5060>")
    register(client, realm, "1003", "<sip:1003@192.0.2.62:5062;transport=TCP>")
    support.wait_until(lambda: len(registrations.contacts(realm, "1003")) == 2,
                       what="both phones registered")
    acts = dial(bridge["port"], fixtures_dir, realm, "1003")
    (data,) = bridge_data(acts)
    # one group of legs (comma-separated: FreeSWITCH rings them together), newest first
    (group,) = fs_run_dial(data)["groups"]
    assert [leg["data"] for leg in group] == ["internal/sip:1003@192.0.2.62:5062;transport=TCP",
                                             "internal/sip:1003@192.0.2.61:5060"]
    assert all(leg["vars"]["ecallmgr_Account-ID"] for leg in group)


def test_device_not_registered_is_480(bridge: dict, fixtures_dir: Path, realm: str) -> None:
    provisioning.create_device(realm, "1002", password="pw")
    provisioning.add_number("1002", realm, "device:1002")
    assert dial(bridge["port"], fixtures_dir, realm, "1002") == \
        [("respond", "480 Temporarily Unavailable")]


def test_unknown_number_is_404(bridge: dict, fixtures_dir: Path, realm: str) -> None:
    assert dial(bridge["port"], fixtures_dir, realm, "7777") == [("respond", "404 Not Found")]


def test_gateway_e164_and_npan(bridge: dict, fixtures_dir: Path, realm: str) -> None:
    provisioning.add_number("+14155550100", realm, "gateway:carrier.example.com",
                            invite_format="e164")
    provisioning.add_number("2125550100", realm, "gateway:gw2.example.net",
                            invite_format="npan")
    (data,) = bridge_data(dial(bridge["port"], fixtures_dir, realm, "14155550100"))
    assert data.endswith("sofia/internal/sip:+14155550100@carrier.example.com")
    (data,) = bridge_data(dial(bridge["port"], fixtures_dir, realm, "+12125550100"))
    assert data.endswith("sofia/internal/sip:2125550100@gw2.example.net")


def test_uri_route_error_route_and_no_match(bridge: dict, fixtures_dir: Path,
                                            realm: str) -> None:
    provisioning.add_number("8000", realm, "uri:sip:conference@media.example.com")
    provisioning.add_number("8001", realm, "error:486:Busy Here")
    (data,) = bridge_data(dial(bridge["port"], fixtures_dir, realm, "8000"))
    assert data.endswith("sofia/internal/sip:conference@media.example.com")
    assert dial(bridge["port"], fixtures_dir, realm, "8001") == [("respond", "486 Busy Here")]
    provisioning.add_number("no_match", realm, "error:503:Try Later")
    assert dial(bridge["port"], fixtures_dir, realm, "9999") == [("respond", "503 Try Later")]


def test_whapp_number_parks(bridge: dict, fixtures_dir: Path, realm: str) -> None:
    provisioning.add_number("5000", realm, "app:attendant")
    acts = dial(bridge["port"], fixtures_dir, realm, "5000")
    assert acts[-1] == ("park", None)
    assert ("set", "ecallmgr_Callflow-ID=number-5000") in acts


def test_number_change_takes_effect_at_once(bridge: dict, fixtures_dir: Path,
                                            realm: str) -> None:
    provisioning.add_number("8100", realm, "error:486:Busy Here")
    assert dial(bridge["port"], fixtures_dir, realm, "8100") == [("respond", "486 Busy Here")]
    provisioning.add_number("8100", realm, "error:603:Decline", replace=True)
    assert dial(bridge["port"], fixtures_dir, realm, "8100") == [("respond", "603 Decline")]
    provisioning.delete_number("8100", realm)
    assert dial(bridge["port"], fixtures_dir, realm, "8100") == [("respond", "404 Not Found")]


def test_number_cli(realm: str) -> None:
    import subprocess

    whistle = str(support.VENV_BIN / "whistle")
    run = lambda *a: subprocess.run([whistle, *a], capture_output=True, text=True)  # noqa: E731
    assert run("number", "add", "6000", "--realm", realm, "--to", "app:attendant").returncode == 0
    assert run("number", "add", "6001", "--realm", realm, "--to", "error:486").returncode == 0
    bad = run("number", "add", "6002", "--realm", realm, "--to", "fax:1")
    assert bad.returncode != 0 and "expected device:USER" in bad.stderr
    dup = run("number", "add", "6000", "--realm", realm, "--to", "error:603")
    assert dup.returncode != 0 and "already assigned" in dup.stderr
    listing = run("number", "list", "--realm", realm).stdout
    assert "6000" in listing and "attendant" in listing and "486" in listing
    assert run("number", "delete", "6001", "--realm", realm).returncode == 0
    assert "6001" not in run("number", "list", "--realm", realm).stdout
    unknown = run("number", "list", "--realm", f"x{uuid.uuid4().hex[:6]}.invalid")
    assert unknown.returncode != 0 and "unknown realm" in unknown.stderr
