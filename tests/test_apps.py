"""``whistle app list|start|stop`` against real Celery workers and RabbitMQ.

Two workers consume the registrar queue: ``registrar-1-<pid>@host``, named like ``whistle up``
names the registrar's workers, and ``shared-<pid>@host``, which also serves the router (not
the registrar's by name). Stopping the registrar leaves both running and the queue
collecting requests; starting it makes the registrar's own worker consume it again, and
the shared one when named with ``--destination``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

import pytest

import schemas
from schemas import contracts
from tests import support
from whistle_tasks.core.amqp import WHAPP_BINDINGS
from whistle_tasks.core.config import settings
from whistle_tasks.ops import platform as control
from whistle_tasks.ops import provisioning

WHISTLE = str(support.VENV_BIN / "whistle")


def node_name(proc: support.Process) -> str:
    match = re.search(r"(\S+@\S+) ready\.", proc.output())
    assert match, proc.output()[-2000:]
    return match.group(1)


@pytest.fixture(scope="module")
def workers(clean_services: None) -> Iterator[dict[str, support.Process]]:
    procs = {"own": support.start_worker("registrar", name="registrar-1", pool="threads",
                                         concurrency=4),
             "shared": support.start_worker("registrar,router", name="shared", pool="threads",
                                            concurrency=4)}
    yield procs
    for proc in procs.values():
        proc.stop()


@pytest.fixture(autouse=True)
def restore_consumers() -> Iterator[None]:
    """Whatever a test stopped, every worker that consumed a whapp queue consumes it again
    afterwards (the session's other workers included)."""
    before = control.active_queues(2.0)
    yield
    now = control.active_queues(2.0)
    for worker, queues in before.items():
        for queue in set(queues) - set(now.get(worker, [])):
            if queue in WHAPP_BINDINGS:
                control.start_whapp(queue, [worker], 2.0)


def whistle(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([WHISTLE, *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ), cwd=support.ROOT, check=False)


def bindings_of(queue: str) -> set[tuple[str, str]]:
    """The queue's bindings as RabbitMQ has them (rabbitmqctl: no management plugin)."""
    vhost = unquote(urlsplit(settings.amqp_url).path[1:]) or "/"
    out = subprocess.run(["rabbitmqctl", "list_bindings", "-p", vhost, "-q", "--no-table-headers",
                          "source_name", "destination_name", "destination_kind", "routing_key"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    found = set()
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[1] == queue and parts[2] == "queue":
            found.add((parts[0], parts[3]))
    return found


def authn_req(realm: str, user: str) -> dict:
    return schemas.build("authn_req", {
        "Auth-Realm": realm, "Auth-User": user, "From": f"sip:{user}@{realm}",
        "To": f"sip:{user}@{realm}", "Method": "REGISTER"}, **{"App-Name": "test"})


@pytest.mark.slow
def test_stop_leaves_requests_waiting_and_start_serves_them(
        workers: dict[str, support.Process], realm: str, client: support.Client) -> None:
    own, shared = node_name(workers["own"]), node_name(workers["shared"])
    pids = {k: p.proc.pid for k, p in workers.items()}
    provisioning.create_device(realm, "1000", password="pw-1000")
    bindings = bindings_of("registrar")
    # the default-exchange binding plus every configured one
    assert bindings == {("", "registrar"), *control.queue_bindings("registrar")}

    done = whistle("app", "stop", "registrar")
    assert done.returncode == 0, done.stdout + done.stderr
    for worker in (own, shared):
        assert re.search(rf"^{re.escape(worker)}\s+no longer consuming from registrar\s+stopped$",
                         done.stdout, re.M), done.stdout
    # the shared worker is not the registrar's by name: the command says how to resume it
    assert f"whistle app start registrar --destination {shared}" in done.stdout
    assert control.queue_states(["registrar"])["registrar"].consumers == 0
    queues = control.active_queues(2.0)
    assert queues[own] == [] and queues[shared] == ["router"]

    msg_id = client.send(contracts.AUTHN, authn_req(realm, "1000"))
    support.wait_until(lambda: control.queue_states(["registrar"])["registrar"].messages == 1,
                       timeout=5, what="the request to wait in the queue")
    time.sleep(1.0)
    assert control.queue_states(["registrar"])["registrar"].messages == 1
    with pytest.raises(AssertionError, match="no reply"):
        client.wait(msg_id, timeout=0.5)

    done = whistle("app", "start", "registrar")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 message(s) waiting in queue 'registrar'" in done.stdout
    assert re.search(rf"^{re.escape(own)}\s+add consumer registrar\s+consuming$", done.stdout,
                     re.M), done.stdout
    assert shared not in done.stdout          # by default only the whapp's own workers
    answer = client.wait(msg_id, timeout=15)
    assert answer["Event-Name"] == "authn_resp" and answer["Auth-Password"] == "pw-1000"
    state = control.queue_states(["registrar"])["registrar"]
    assert (state.messages, state.consumers) == (0, 1)
    assert control.active_queues(2.0)[shared] == ["router"]

    done = whistle("app", "start", "registrar", "--destination", shared)
    assert done.returncode == 0, done.stdout + done.stderr
    assert control.queue_states(["registrar"])["registrar"].consumers == 2
    # nothing restarted, no binding lost or added
    assert {k: p.proc.pid for k, p in workers.items()} == pids
    assert all(p.proc.poll() is None for p in workers.values())
    assert bindings_of("registrar") == bindings
    assert "Canceling queue registrar" in workers["own"].output()
    assert "Started consuming from registrar" in workers["own"].output()


def test_list_shows_queues_bindings_and_consumers(workers: dict[str, support.Process]) -> None:
    own, shared = node_name(workers["own"]), node_name(workers["shared"])
    done = whistle("app", "list")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["WHAPP", "QUEUE", "MESSAGES", "CONSUMERS", "WORKERS",
                                "BINDINGS"]
    rows = {line.split()[0]: line for line in lines[1:] if not line.startswith(" ")}
    assert set(rows) == set(WHAPP_BINDINGS)
    assert re.search(rf"^registrar\s+registrar\s+\d+\s+[2-9]\s+.*{re.escape(own)}",
                     rows["registrar"]), rows["registrar"]
    assert shared in rows["registrar"] and shared in rows["router"]
    # every binding of every queue is listed, one per line under its whapp
    for whapp in WHAPP_BINDINGS:
        for exchange, key in control.queue_bindings(whapp):
            assert re.search(rf"\s{exchange} {re.escape(key)}$", done.stdout, re.M), (whapp, key)

    data = json.loads(whistle("app", "list", "--json").stdout)
    by_name = {item["whapp"]: item for item in data}
    assert by_name["registrar"]["consumers"] >= 2
    assert {own, shared} <= set(by_name["registrar"]["workers"])
    assert {(b["exchange"], b["routing_key"]) for b in by_name["callflow"]["bindings"]} == {
        ("callmgr", "mwi.query.*"), ("callmgr", "whapp.callflow"), ("targeted", "callflow")}
    assert {(b["exchange"], b["routing_key"]) for b in by_name["registrar"]["bindings"]} == \
        bindings_of("registrar") - {("", "registrar")}


def test_stop_one_worker_by_destination(workers: dict[str, support.Process]) -> None:
    own, shared = node_name(workers["own"]), node_name(workers["shared"])
    done = whistle("app", "stop", "router", "--destination", shared)
    assert done.returncode == 0, done.stdout + done.stderr
    assert control.active_queues(2.0)[shared] == ["registrar"]
    assert control.queue_states(["router"])["router"].consumers == 0
    assert control.active_queues(2.0)[own] == ["registrar"]
    # router's own workers: there are none, so a plain start has nobody to ask
    done = whistle("app", "start", "router")
    assert done.returncode == 1
    assert "no running worker is named router-<n>@host" in done.stderr
    done = whistle("app", "start", "router", "-d", shared)
    assert done.returncode == 0, done.stdout + done.stderr
    assert control.queue_states(["router"])["router"].consumers == 1


def test_errors(workers: dict[str, support.Process]) -> None:
    done = whistle("app", "stop", "nosuch")
    assert done.returncode == 2
    assert ("unknown whapp 'nosuch': one of registrar, router, callflow, maintenance"
            in done.stderr)
    done = whistle("app", "start", "registrar", "--destination", "nobody@nowhere")
    assert done.returncode == 1
    assert "nobody@nowhere: no answer" in done.stderr
    assert "start registrar: no worker answered" in done.stderr
    # nothing consumes callflow in this module
    done = whistle("app", "stop", "callflow")
    assert done.returncode == 1
    assert "stop callflow: no running worker consumes queue 'callflow'" in done.stderr
    done = subprocess.run([WHISTLE, "app", "list"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "WHISTLE_AMQP_URL":
                               "amqp://guest:pw-s3cret@127.0.0.1:1/x"}, check=False)
    assert done.returncode == 1
    assert "RabbitMQ does not answer at amqp://guest:****@127.0.0.1:1/x" in done.stderr
    assert "s3cret" not in done.stderr + done.stdout
