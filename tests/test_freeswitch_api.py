"""The REST API driving a real FreeSWITCH (configured from deploy/freeswitch/, SIPp phones):
a callflow made over the API routes the number, click-to-call over the API rings the
caller's phone and, once it answered, the number; the call shows among the calls in
progress, is hung up over the API, and leaves exactly one record per leg, which the API and
``whistle cdr list`` both return."""

from __future__ import annotations

import csv
import io
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests import fskit, phonekit, support
from tests.apikit import start_api
from whistle_tasks.ops import api_keys, provisioning

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("freeswitch")]


@pytest.fixture(scope="module")
def api(freeswitch: fskit.Platform) -> Iterator[str]:
    cdr = support.start_worker("cdr", name="fsapi-cdr", pool="threads", concurrency=2,
                               env={"WHISTLE_CDR_LINGER_MS": "100"})
    support.wait_until(lambda: "cdr consumer: consuming" in cdr.output(), 30,
                       what="the cdr consumer")
    proc, base = start_api("api-fs")
    yield base
    proc.stop()
    cdr.stop()
    for process in (proc, cdr):
        assert "Traceback" not in process.output(), process.output()[-3000:]


def test_click_to_call_over_the_api_leaves_one_record_per_leg(
        freeswitch: fskit.Platform, api: str, realm: str) -> None:
    account = provisioning.get_account(realm)
    key, _ = api_keys.create(realm)
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{api}/v1/accounts/{account['_id']}"

    def get(path: str, **params: Any) -> Any:  # noqa: ANN401
        resp = requests.get(url + path, headers=headers, params=params, timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()

    caller_port, callee_port = (phonekit.register(freeswitch, realm, "1000"),

                                phonekit.register(freeswitch, realm, "2001"))
    made = requests.post(f"{url}/callflows", headers=headers, timeout=30, json={
        "numbers": ["2001"], "flow": {"module": "device", "data": {"username": "2001"}}})
    assert made.status_code == 201, made.text
    caller, callee = phonekit.sipp_phone(freeswitch, "uas_answer.xml", caller_port, "1000"), \
        phonekit.sipp_phone(freeswitch, "uas_answer.xml", callee_port, "2001")
    since = time.time() - 1
    placed = requests.post(f"{url}/click-to-call", headers=headers, timeout=90,
                           json={"from": "1000", "to": "2001", "timeout": 20})
    assert placed.status_code == 201, placed.text
    call_id = placed.json()["call_id"]

    seen: list[Any] = []

    def both_answered() -> list[dict[str, Any]] | None:
        seen[:] = get("/calls")["data"]
        found = [c for c in seen if c.get("state") in ("answered", "bridged")]
        return found if len(found) == 2 else None

    try:
        legs = support.wait_until(both_answered, 30,
                                  what="both legs answered among the calls in progress")
    except AssertionError:
        raise AssertionError(f"calls in progress: {seen}; caller's phone: "
                             f"{caller.wait(1).describe()}") from None
    assert call_id in {c["call_id"] for c in legs}
    hung = requests.delete(f"{url}/calls/{call_id}", headers=headers, timeout=30)
    assert hung.status_code == 200, hung.text
    for sipp in (caller.wait(30), callee.wait(30)):
        assert sipp.received() == ["INVITE", "ACK", "BYE"], sipp.describe()

    ids = {c["call_id"] for c in legs}
    records = support.wait_until(lambda: (lambda found: found if {r["id"] for r in found}
                                          >= ids else None)(
        get("/cdrs", since=str(since))["data"]), 30, what="a record of each leg")
    time.sleep(2)   # a late or redelivered event would show as one more record
    records = get("/cdrs", since=str(since))["data"]
    assert sorted(r["id"] for r in records) == sorted(ids), records
    by_id = {r["id"]: r for r in records}
    other = next(i for i in ids if i != call_id)
    assert by_id[call_id]["other_leg_call_id"] == other
    assert by_id[other]["other_leg_call_id"] == call_id
    assert by_id[other]["callee_id_number"] == "2001" or by_id[other]["dialled_number"] == "2001"
    assert all(r["billing_seconds"] >= 0 and not r["partial"] for r in records)
    assert get(f"/cdrs/{other}")["id"] == other
    out = subprocess.run([str(support.VENV_BIN / "whistle"), "cdr", "list", "--realm", realm,
                          "--since", str(int(since)), "--csv"], capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert sorted(r["id"] for r in csv.DictReader(io.StringIO(out.stdout))) == sorted(ids)
