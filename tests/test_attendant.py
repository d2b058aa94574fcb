"""The shipped auto-attendant, end to end: a call to its number is routed by the router,
parked by the bridge, won by the call-control worker (Celery, gevent pool), and walked
through answer, greeting, digits and a bridge to the extension's registered contact — all
seen as the sendmsg frames FreeSWITCH would get."""

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
from tests.esl_standin import EslStandIn
from whistle_tasks.ops import provisioning

pytestmark = pytest.mark.usefixtures("whapp_worker")


@pytest.fixture(scope="module", autouse=True)
def workers() -> Iterator[None]:
    router = support.start_worker("router", name="att-router", pool="threads", concurrency=8)
    callflow = support.start_worker("callflow", name="att-callflow", pool="gevent",
                                    concurrency=100)
    yield
    router.stop()
    callflow.stop()


def call_apps(standin: EslStandIn, call_id: str) -> list[tuple[str, str | None]]:
    return [(c.headers.get("execute-app-name", ""), c.app_arg) for c in standin.commands
            if c.verb == "sendmsg" and c.args == call_id]


def place_call(bridge: dict, fixtures: Path, realm: str) -> str:
    call_id = str(uuid.uuid4())
    _, xml = xmlcurl.post(bridge["port"], "/fs/dialplan", dialplan_body(
        fixtures, realm, "5000", {"Unique-ID": call_id, "Channel-Call-UUID": call_id}))
    assert actions(xml)[-1] == ("park", None)
    return call_id


def test_attendant_bridges_to_the_extension(bridge: dict, standin: EslStandIn,
                                            fixtures_dir: Path, realm: str,
                                            client: support.Client) -> None:
    provisioning.create_device(realm, "1001", password="pw")
    provisioning.add_number("5000", realm, "app:attendant")
    reg = schemas.build("reg_success", {
        "Realm": realm, "Username": "1001", "Contact": "<sip:1001@192.0.2.77:5080>",
        "Expires": 3600, "Event-Timestamp": time.time()}, **{"App-Name": "test"})
    client.send(contracts.REG_SUCCESS, reg)
    from whistle_tasks.data import registrations

    support.wait_until(lambda: registrations.lookup(realm, "1001"), what="1001 registered")
    standin.auto_complete = True
    standin.app_responses = {"playback": "FILE PLAYED", "play_and_get_digits": ""}
    standin.app_variables = {"play_and_get_digits": {"variable_collected_digits": "1001"},
                             "bridge": {"variable_originate_disposition": "SUCCESS"}}
    try:
        call_id = place_call(bridge, fixtures_dir, realm)
        support.wait_until(lambda: [a for a, _ in call_apps(standin, call_id)][-1:] ==
                           ["hangup"], timeout=20, what="the attendant to finish")
    finally:
        standin.auto_complete = False
        standin.app_variables = {}
        standin.app_responses = {}
    apps = call_apps(standin, call_id)
    assert [a for a, _ in apps] == ["answer", "playback", "play_and_get_digits", "bridge",
                                    "hangup"], apps
    assert apps[1][1] == "ivr/ivr-welcome_to_freeswitch.wav"
    assert apps[2][1].startswith("3 6 3 5000 ")          # min max tries timeout
    assert apps[3][1].endswith("sofia/internal/sip:1001@192.0.2.77:5080")


def test_attendant_announces_an_unknown_extension(bridge: dict, standin: EslStandIn,
                                                  fixtures_dir: Path, realm: str) -> None:
    provisioning.add_number("5000", realm, "app:attendant")
    standin.auto_complete = True
    standin.app_variables = {"play_and_get_digits": {"variable_collected_digits": "4321"}}
    try:
        call_id = place_call(bridge, fixtures_dir, realm)
        support.wait_until(lambda: [a for a, _ in call_apps(standin, call_id)][-1:] ==
                           ["hangup"], timeout=20, what="the attendant to finish")
    finally:
        standin.auto_complete = False
        standin.app_variables = {}
    apps = call_apps(standin, call_id)
    assert [a for a, _ in apps] == ["answer", "playback", "play_and_get_digits", "playback",
                                    "playback", "hangup"], apps
    assert apps[3][1] == "ivr/ivr-not_available.wav"
