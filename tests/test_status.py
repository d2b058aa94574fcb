"""``whistle status`` against a running platform: a real switch bridge (connected to the ESL
stand-in), a real Celery worker on every whapp queue, RabbitMQ and CouchDB — and the same
command when the bridge, RabbitMQ or CouchDB are not there."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator

import pytest

import schemas
from schemas import contracts
from tests import support
from tests.bridgekit import free_port, metrics
from tests.esl_standin import EslStandIn
from whistle_tasks.core import amqp
from whistle_tasks.core.config import settings
from whistle_tasks.core.couch import get_couch
from whistle_tasks.ops import platform as control
from whistle_tasks.ops import provisioning

WHISTLE = str(support.VENV_BIN / "whistle")
ALL_QUEUES = "registrar,router,callflow,maintenance,cdr,notify"


@pytest.fixture(scope="module")
def worker(clean_services: None) -> Iterator[support.Process]:
    """One worker consuming every whapp queue (the status only needs consumers)."""
    proc = support.start_worker(ALL_QUEUES, name="status-all", pool="threads", concurrency=4)
    yield proc
    proc.stop()


def whistle(*args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([WHISTLE, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=support.ROOT, check=False)


def node_name(proc: support.Process) -> str:
    """The worker's node name as it announced itself (``<name>-<pid>@host``)."""
    match = re.search(r"(\S+@\S+) ready\.", proc.output())
    assert match, proc.output()[-2000:]
    return match.group(1)


def register(client: support.Client, realm: str, user: str) -> None:
    msg = schemas.build("reg_success", {
        "Realm": realm, "Username": user,
        "Contact": f"<sip:{user}@192.0.2.5:5060;rinstance={support.unique()}>",
        "Expires": 3600, "Event-Timestamp": time.time()}, **{"App-Name": "test"})
    client.send(contracts.REG_SUCCESS, msg)


def stored_registrations() -> list[dict]:
    """Every stored registration, read without the reduce the command uses."""
    return get_couch().view("registrations", "registrations", "by_realm", reduce=False)


def test_status_shows_nodes_queues_workers_and_registrations(
        worker: support.Process, bridge: dict, standin: EslStandIn, realm: str,
        client: support.Client) -> None:
    register(client, realm, "1001")
    register(client, realm, "1002")
    support.wait_until(lambda: sum(r["key"] == realm for r in stored_registrations()) == 2,
                       timeout=15, what="two registrations stored")
    # three events through the ESL node, so its counter in /metrics is not just zero
    before = metrics(bridge["port"]).get(
        f'whistle_bridge_esl_node_events{{node="127.0.0.1:{standin.port}"}}', 0)
    for _ in range(3):
        standin.heartbeat()
    key = f'whistle_bridge_esl_node_events{{node="127.0.0.1:{standin.port}"}}'
    support.wait_until(lambda: metrics(bridge["port"]).get(key) == before + 3, timeout=10,
                       what="the bridge to count the heartbeats")
    env = {"WHISTLE_HTTP_LISTEN": f"127.0.0.1:{bridge['port']}"}

    done = whistle("status", env=env)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert f"Switch bridge 127.0.0.1:{bridge['port']}: answers, its RabbitMQ connection is up" \
        in out
    assert re.search(rf"^127\.0\.0\.1:{standin.port}\s+connected\s+active\s+{int(before) + 3}"
                     r"\s+0$",
                     out, re.M), out
    me = node_name(worker)
    for whapp in ALL_QUEUES.split(","):
        row = re.search(rf"^{whapp}\s+{whapp}\s+(\d+)\s+(\d+)\s+(.*)$", out, re.M)
        assert row, out
        assert int(row.group(2)) >= 1 and me in row.group(3), row.group(0)
    assert re.search(rf"^{re.escape(me)}\s+callflow, cdr, maintenance, notify, registrar, "
                     r"router$", out, re.M), out
    total = len(stored_registrations())
    assert re.search(rf"^Registrations: {total}\b", out, re.M), out
    assert "All parts answer." in out
    assert "guest:****@" in out and ":guest@" not in out

    # the same facts for machines
    done = whistle("status", "--json", env=env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is True and data["problems"] == []
    assert data["bridge"]["answered"] is True and data["bridge"]["amqp"] == "up"
    assert data["bridge"]["nodes"] == [{"name": f"127.0.0.1:{standin.port}",
                                        "state": "connected", "events": int(before) + 3,
                                        "reconnects": 0, "role": "active"}]
    queues = {q["whapp"]: q for q in data["queues"]}
    assert set(queues) == set(ALL_QUEUES.split(","))
    assert all(me in q["workers"] and q["consumers"] >= 1 for q in queues.values())
    assert data["workers"][me] == sorted(ALL_QUEUES.split(","))
    assert data["registrations"]["total"] == total
    if not data["registrations"]["more_realms"]:
        assert data["registrations"]["by_realm"][realm] == 2


def test_queue_depth_counts_waiting_messages(clean_services: None) -> None:
    """A message on a queue nobody consumes is counted; a missing queue is reported, not
    created."""
    queue = f"status-probe-{support.unique()}"
    from kombu import Connection, Queue

    with Connection(settings.amqp_url) as conn:
        q = Queue(queue, exchange=amqp.CALLMGR, routing_key=queue, auto_delete=False)(
            conn.channel())
        q.declare()
        try:
            conn.Producer().publish({"x": 1}, exchange=amqp.CALLMGR, routing_key=queue)
            state = support.wait_until(
                lambda: control.queue_states([queue])[queue].messages == 1 and
                control.queue_states([queue])[queue], timeout=5, what="the message counted")
            assert state.consumers == 0
        finally:
            q.delete()
    assert control.queue_states([queue])[queue].problem.startswith("queue does not exist")


def test_status_says_the_bridge_does_not_answer(worker: support.Process) -> None:
    port = free_port()
    done = whistle("status", env={"WHISTLE_HTTP_LISTEN": f"127.0.0.1:{port}"})
    assert done.returncode == 1, done.stdout
    assert f"Switch bridge: does not answer at 127.0.0.1:{port}" in done.stdout
    assert "Problems:" in done.stdout
    assert f"  - switch bridge: does not answer at 127.0.0.1:{port}" in done.stdout
    # the rest is still shown: the workers answered
    assert re.search(r"^registrar\s+registrar\s+\d+\s+[1-9]", done.stdout, re.M), done.stdout
    done = whistle("status", "--json", env={"WHISTLE_HTTP_LISTEN": f"127.0.0.1:{port}"})
    assert done.returncode == 1, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is False and data["bridge"]["answered"] is False
    assert data["problems"] == [f"switch bridge: {data['bridge']['problem']}"]


def test_status_when_rabbitmq_and_couchdb_are_away_masks_passwords() -> None:
    amqp_port, couch_port = free_port(), free_port()
    done = whistle("status", env={
        "WHISTLE_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        "WHISTLE_AMQP_URL": f"amqp://guest:amqp-s3cret@127.0.0.1:{amqp_port}/x",
        "WHISTLE_COUCH_URL": f"http://admin:couch-s3cret@127.0.0.1:{couch_port}"})
    text = done.stdout + done.stderr
    assert done.returncode == 1, text
    assert f"RabbitMQ does not answer at amqp://guest:****@127.0.0.1:{amqp_port}/x" in text
    assert f"CouchDB (http://admin:****@127.0.0.1:{couch_port})" in text
    assert "s3cret" not in text


def test_registration_count_per_realm_is_cut_at_the_limit(
        worker: support.Process, realm: str, client: support.Client) -> None:
    other = f"{support.unique('r')}.example.com"
    provisioning.create_account("Other", other)
    register(client, realm, "2001")
    register(client, other, "2001")
    support.wait_until(lambda: {realm, other} <= {r["key"] for r in stored_registrations()},
                       timeout=15, what="registrations in two realms")
    rows = stored_registrations()
    realms = sorted({r["key"] for r in rows})
    counts = control.registration_count(limit=len(realms))
    assert counts.total == len(rows) and not counts.more_realms
    assert counts.by_realm == {k: sum(r["key"] == k for r in rows) for k in realms}
    cut = control.registration_count(limit=1)
    assert cut.total == len(rows) and cut.more_realms
    assert cut.by_realm == {realms[0]: counts.by_realm[realms[0]]}
