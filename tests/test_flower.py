"""Flower, looked at in a real browser: headless Chromium opens its workers and tasks pages.

The platform as ``whistle up`` runs it (one worker per whapp queue, named
``<whapp>-1-<pid>@host``; threads pools, gevent for callflow), Flower without RabbitMQ's
management plugin, and one task of each whapp that succeeds:

* ``registrar.authn_req``: a client asks for a device's credentials;
* ``router.route_req`` and ``callflow.route_win``: a dialplan lookup through the switch
  bridge for a number whose target is a whapp nobody wrote: the router parks the call, the
  bridge hands it to callflow, which answers ``503`` on the call's control queue and hangs
  up (seen by the ESL stand-in as FreeSWITCH would get them) — and the task succeeded;
* ``maintenance.compact``: the beat task, sent by hand.

Flower's pages are filled by JavaScript (DataTables over ``/workers?json=1`` and
``/tasks/datatable``), so the test lets Chromium run the page (``--virtual-time-budget``)
and reads the DOM it dumps, then keeps a screenshot of both pages in test-output/.
The JSON the pages call is only a cross-check, read before the browser looks.
"""

from __future__ import annotations

import re
import struct
import subprocess
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

import schemas
from schemas import contracts
from tests import support, xmlcurl
from tests.bridgekit import actions, dialplan_body, free_port
from tests.esl_standin import EslStandIn
from whistle_tasks.ops import provisioning

CHROMIUM = Path("/usr/bin/chromium")
WHAPPS = {"registrar": "threads", "router": "threads", "maintenance": "threads",
          "callflow": "gevent"}
TASKS = ("registrar.authn_req", "router.route_req", "callflow.route_win",
         "maintenance.compact")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's Chromium is not installed (/usr/bin/chromium): apt-get install -y chromium")]


@pytest.fixture(scope="module")
def workers(clean_services: None) -> Iterator[dict[str, str]]:
    """``{whapp: node name}``, one worker per whapp queue as ``whistle up`` runs them."""
    procs = {whapp: support.start_worker(whapp, name=f"{whapp}-1", pool=pool,
                                         concurrency=50 if pool == "gevent" else 4)
             for whapp, pool in WHAPPS.items()}
    nodes = {}
    for whapp, proc in procs.items():
        match = re.search(r"(\S+@\S+) ready\.", proc.output())
        assert match, proc.output()[-2000:]
        nodes[whapp] = match.group(1)
    yield nodes
    for proc in procs.values():
        proc.stop()
    for whapp, proc in procs.items():
        assert "Traceback" not in proc.output(), (whapp, proc.output()[-3000:])


@pytest.fixture(scope="module")
def flower(workers: dict[str, str]) -> Iterator[str]:
    """Flower on a free port (no ``--broker_api``: its Broker page needs the management
    plugin, the workers and tasks pages do not)."""
    port = free_port()
    proc = support.Process("flower", [str(support.VENV_BIN / "celery"), "-A", "whistle_tasks",
                                      "flower", "--address=127.0.0.1", f"--port={port}"])
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return requests.get(f"{base}/healthcheck", timeout=2).text == "OK"
        except requests.RequestException:
            return proc.proc.poll() is not None

    support.wait_until(answers, 30, interval=0.3, what="Flower to answer")
    assert proc.proc.poll() is None, proc.output()[-3000:]
    yield base
    proc.stop()
    assert "Traceback" not in proc.output(), proc.output()[-3000:]


def online_workers(base: str) -> set[str]:
    """The workers Flower calls online, from the JSON its workers page reloads."""
    data = requests.get(f"{base}/workers?json=1", timeout=10).json()["data"]
    return {w["hostname"] for w in data if w.get("status")}


def succeeded_tasks(base: str) -> dict[str, str]:
    """``{task name: worker}`` of succeeded tasks, from the JSON its tasks page loads."""
    params = {"draw": "1", "start": "0", "length": "100", "search[value]": "",
              "order[0][column]": "0", "order[0][dir]": "asc", "columns[0][data]": "name"}
    rows = requests.get(f"{base}/tasks/datatable", params=params, timeout=10).json()["data"]
    return {r["name"]: r["worker"] for r in rows if r.get("state") == "SUCCESS"}


class TableText(HTMLParser):
    """The text of each cell of each body row of the table with ``id`` in a dumped DOM."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.rows: list[list[str]] = []
        self._depth = 0          # table nesting inside ours (0: outside)
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            if self._depth or dict(attrs).get("id") == self.table_id:
                self._depth += 1
        elif self._depth == 1 and tag == "tbody":
            self._in_body = True
        elif self._depth == 1 and self._in_body and tag == "tr":
            self.rows.append([])
        elif self._depth == 1 and self._in_body and tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._depth:
            self._depth -= 1
        elif tag == "tbody" and self._depth == 1:
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def element_text(dom: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    return match.group(1).strip() if match else ""


def browse(url: str, screenshot: Path, profile: Path) -> str:
    """Open ``url`` in headless Chromium, let its scripts run, return the DOM and save a
    1400x900 screenshot of the same page state."""
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.unlink(missing_ok=True)
    done = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
         "--virtual-time-budget=5000", "--window-size=1400,900",
         f"--screenshot={screenshot}", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert screenshot.is_file(), done.stderr[-3000:]
    return done.stdout


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def run_one_task_of_each_whapp(bridge: dict, standin: EslStandIn, fixtures: Path,
                               realm: str) -> None:
    from whistle_tasks.celery import app

    client = support.Client()
    try:
        provisioning.create_device(realm, "1000", password="pw-1000")
        msg = schemas.build("authn_req", {
            "Auth-Realm": realm, "Auth-User": "1000", "From": f"sip:1000@{realm}",
            "To": f"sip:1000@{realm}", "Method": "REGISTER"}, **{"App-Name": "test"})
        answer = client.request(contracts.AUTHN, msg)
        assert answer["Event-Name"] == "authn_resp"
    finally:
        client.close()

    # a callflow (edited by hand in CouchDB: saving would refuse it) naming a module that
    # does not exist: routed (park), won by callflow, answered 503
    from whistle_tasks.core.couch import get_couch

    get_couch().save(provisioning.get_account(realm)["pvt_account_db"], {
        "_id": "number-5000", "pvt_type": "callflow", "numbers": ["5000"],
        "flow": {"module": "no-such-whapp"}})
    call_id = str(uuid.uuid4())
    standin.auto_complete = True
    try:
        status, xml = xmlcurl.post(bridge["port"], "/fs/dialplan", dialplan_body(
            fixtures, realm, "5000", {"Unique-ID": call_id, "Channel-Call-UUID": call_id}))
        assert status == 200 and actions(xml)[-1] == ("park", None), xml

        def call_apps() -> list[tuple[str, str | None]]:
            return [(c.headers.get("execute-app-name", ""), c.app_arg) for c in standin.commands
                    if c.verb == "sendmsg" and c.args == call_id]

        support.wait_until(lambda: [a for a, _ in call_apps()][-1:] == ["hangup"], timeout=20,
                           what="callflow to answer 503 and hang up")
    finally:
        standin.auto_complete = False
    # FreeSWITCH got exactly what callflow sends for an unknown whapp: 503, then hang up
    assert call_apps() == [("respond", "503 Service Unavailable"), ("hangup", None)]

    app.send_task("maintenance.compact")


def test_flower_shows_the_workers_and_a_succeeded_task_of_each_whapp(
        workers: dict[str, str], flower: str, bridge: dict, standin: EslStandIn,
        fixtures_dir: Path, realm: str, tmp_path: Path) -> None:
    support.wait_until(lambda: set(workers.values()) <= online_workers(flower), 30,
                       interval=0.5, what="Flower to see every worker online")
    run_one_task_of_each_whapp(bridge, standin, fixtures_dir, realm)
    # the cross-check: the JSON the tasks page loads has every task, on its whapp's worker
    support.wait_until(lambda: set(TASKS) <= set(succeeded_tasks(flower)), 30, interval=0.5,
                       what=f"Flower to list {TASKS} as succeeded")
    # (the session's shared worker serves registrar and maintenance too: it may take theirs)
    def serves(task: str, worker: str) -> bool:
        return worker == workers[task.split(".")[0]] or (
            worker.startswith("whapps-") and task.split(".")[0] in ("registrar", "maintenance"))

    succeeded = {t: w for t, w in succeeded_tasks(flower).items() if t in TASKS}
    assert set(succeeded) == set(TASKS) and all(serves(t, w) for t, w in succeeded.items())

    out = support.OUTPUT
    dom = browse(f"{flower}/workers", out / "flower-workers.png", tmp_path / "chrome")
    table = TableText("workers-table")
    table.feed(dom)
    rows = {r[0]: r for r in table.rows if r}
    for node in workers.values():
        # DataTables drew the row: the template's raw "True" became the "Online" badge
        assert node in rows, (node, list(rows))
        assert rows[node][1] == "Online", rows[node]
    assert int(element_text(dom, "workers-online")) >= len(workers), \
        element_text(dom, "workers-online")
    assert int(element_text(dom, "workers-succeeded")) >= len(TASKS)

    dom = browse(f"{flower}/tasks", out / "flower-tasks.png", tmp_path / "chrome")
    table = TableText("tasks-table")
    table.feed(dom)
    # NAME, UUID, STATE, RECEIVED, RUNTIME, WORKER
    shown = {(r[0], r[2], r[5]) for r in table.rows if len(r) >= 6}
    for task in TASKS:
        assert (task, "SUCCESS", succeeded[task]) in shown, (task, shown)

    for png in (out / "flower-workers.png", out / "flower-tasks.png"):
        assert png_size(png) == (1400, 900)
        assert png.stat().st_size > 20_000, "a blank page would compress to a few KB"

