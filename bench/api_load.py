"""REST API latency: listing 10,000 devices page by page, and a month query over 200,000 CDRs.

    .venv/bin/python bench/api_load.py [--devices 10000] [--cdrs 200000] [--passes 3]

Set-up (not timed): an account with ``--devices`` devices (``create_devices``) and
``--cdrs`` records in its monthly CDR database (written in bulk as the cdr worker writes
them), both views built. The API runs as ``whistle up`` runs it (gunicorn, 2 gevent
workers). One client, one request at a time on a kept-alive connection:

* **devices**: every page of 100 (``GET /v1/accounts/{id}/devices?limit=100&cursor=..``),
  ``--passes`` times over the 10,000; floor, same run: the bare CouchDB view request of the
  same page (``credentials/by_realm_user`` with the same start key and limit).
* **CDRs, a month**: ``GET /v1/accounts/{id}/cdrs?since=<month start>&until=<month end>
  &limit=100`` and its next 99 pages (10,000 records) per pass; floor: the bare CouchDB view
  request of the same page (``cdrs/by_time`` with ``include_docs``, same keys and limit).

Each line gives p50 and p99 of the request latency, the API's beside its floor.

``--pbx`` measures the PBX endpoints instead (no devices or CDRs set up; seconds): an
account with ``--users`` users (each owning one device), then ``--passes`` × ``--users``
requests of each kind:

* **users, list**: ``GET /v1/accounts/{id}/users`` (all of them, with their devices); floor:
  the two bare CouchDB view requests ``whistle user list`` makes (``users/by_username``
  with ``include_docs`` and ``users/devices_by_owner``), timed together;
* **user, one**: ``GET .../users/{username}``; floor: the bare ``users/by_username`` request
  of that key with ``include_docs``;
* **user, do-not-disturb**: ``PATCH .../users/{username}`` ``{"do_not_disturb": ...}``
  (through ``ops.users.set_dnd``: CouchDB read and write, the shared cache entry deleted,
  the change broadcast); floor: the bare CouchDB GET and PUT of the same document.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

from bench.common import VENV_BIN, Proc, Result, reset_bench_resources  # noqa: E402
from whistle_tasks.core.config import settings  # noqa: E402
from whistle_tasks.core.couch import get_couch  # noqa: E402
from whistle_tasks.data import cdrs  # noqa: E402
from whistle_tasks.ops import api_keys, provisioning  # noqa: E402
from whistle_tasks.ops.supervisor import api_argv  # noqa: E402
from whistle_tasks.whapps.cdr import record, writer  # noqa: E402

PORT = 18731


def timed(session: requests.Session, url: str, result: Result, **kw: object) -> dict:
    t0 = time.perf_counter()
    resp = session.get(url, timeout=600, **kw)
    result.latencies_ms.append((time.perf_counter() - t0) * 1000)
    result.sent += 1
    if resp.status_code == 200:
        result.answered += 1
    else:
        result.errors += 1
    return resp.json()


def timed_req(session: requests.Session, method: str, url: str, result: Result,
              **kw: object) -> requests.Response:
    t0 = time.perf_counter()
    resp = session.request(method, url, timeout=600, **kw)
    result.latencies_ms.append((time.perf_counter() - t0) * 1000)
    result.sent += 1
    if resp.ok:
        result.answered += 1
    else:
        result.errors += 1
    return resp


def start_api(key: str) -> tuple[Proc, str, requests.Session]:
    api = Proc("api", api_argv(settings, str(VENV_BIN / "python"), f"127.0.0.1:{PORT}", 2))
    base = f"http://127.0.0.1:{PORT}"
    for _ in range(100):
        try:
            if requests.get(f"{base}/v1/health", timeout=2).ok:
                break
        except requests.RequestException:
            time.sleep(0.2)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    return api, base, session


def pbx(n_users: int, passes: int) -> None:
    """The PBX endpoints (see the module's docstring)."""
    from whistle_tasks.ops import users as user_ops

    realm = "bench-pbx.example.com"
    account = provisioning.create_account("Bench PBX", realm)
    t0 = time.monotonic()
    provisioning.create_devices(realm, [{"username": f"{100000 + i}", "password": "pw"}
                                        for i in range(n_users)], chunk=1000)
    for i in range(n_users):
        user_ops.create_user(realm, f"u{i:05d}")
        user_ops.add_device(realm, f"u{i:05d}", f"{100000 + i}")
    print(f"set-up: {n_users} users with a device each in {time.monotonic() - t0:.0f} s")
    key, _ = api_keys.create(realm)
    api, base, session = start_api(key)
    couch = get_couch()
    db = couch.db_url(account["pvt_account_db"])
    by_name = f"{db}/_design/users/_view/by_username"
    by_owner = f"{db}/_design/users/_view/devices_by_owner"
    bare = requests.Session()
    url = f"{base}/v1/accounts/{account['_id']}/users"
    results = {k: (Result(f"{k} api"), Result(f"{k} floor")) for k in ("list", "one", "dnd")}
    try:
        for n in range(passes * n_users):
            name = f"u{n % n_users:05d}"
            if n % 10 == 0:   # the list is n_users long: a tenth as many of those
                listed = timed_req(session, "GET", url, results["list"][0])
                assert len(listed.json()["data"]) == n_users, listed.text[:200]
                t0 = time.perf_counter()
                bare.get(by_name, params={"include_docs": "true"}, timeout=600).raise_for_status()
                bare.get(by_owner, timeout=600).raise_for_status()
                results["list"][1].latencies_ms.append((time.perf_counter() - t0) * 1000)
                results["list"][1].sent += 1
            timed_req(session, "GET", f"{url}/{name}", results["one"][0])
            row = timed_req(bare, "GET", by_name, results["one"][1], params={
                "key": json.dumps(name), "include_docs": "true"}).json()["rows"][0]
            timed_req(session, "PATCH", f"{url}/{name}", results["dnd"][0],
                      json={"do_not_disturb": n // n_users % 2 == 0})
            t0 = time.perf_counter()
            doc = bare.get(f"{db}/{row['id']}", timeout=600).json()
            bare.put(f"{db}/{row['id']}", json={**doc, "bench": n}, timeout=600
                     ).raise_for_status()
            results["dnd"][1].latencies_ms.append((time.perf_counter() - t0) * 1000)
            results["dnd"][1].sent += 1
        for label, key_ in ((f"users, list of {n_users}", "list"), ("user, one", "one"),
                            ("user, do-not-disturb (PATCH)", "dnd")):
            api_r, floor_r = results[key_]
            print(f"{label}: API p50 {api_r.p50:.1f} ms p99 {api_r.p99:.1f} ms "
                  f"({api_r.answered}/{api_r.sent} ok) | bare CouchDB p50 {floor_r.p50:.1f} ms "
                  f"p99 {floor_r.p99:.1f} ms | ratio p50 {api_r.p50 / floor_r.p50:.2f}x")
    finally:
        api.stop()


def setup(n_devices: int, n_cdrs: int) -> tuple[dict, str, float, float]:
    realm = "bench-api.example.com"
    account = provisioning.create_account("Bench API", realm)
    t0 = time.monotonic()
    provisioning.create_devices(realm, [{"username": f"{100000 + i}", "password": "pw"}
                                        for i in range(n_devices)], chunk=1000)
    print(f"set-up: {n_devices} devices in {time.monotonic() - t0:.0f} s")
    month = cdrs.month_of(time.time())
    start, end = cdrs.month_bounds(month)
    t0 = time.monotonic()
    step = (end - start - 120) / n_cdrs
    batch = []
    for i in range(n_cdrs):
        at = start + 60 + i * step
        batch.append(record.from_event({
            "Event-Category": "call_event", "Event-Name": "CHANNEL_HANGUP_COMPLETE",
            "App-Name": "bench", "App-Version": "1", "Msg-ID": f"m{i}",
            "Call-ID": f"bench-{i:07d}", "Timestamp": at, "Call-Direction": "inbound",
            "Caller-ID-Number": f"1{i % 1000:03d}", "Callee-ID-Number": "2000",
            "Channel-Created-Time": at - 60, "Channel-Answered-Time": at - 50,
            "Channel-Hangup-Time": at, "Duration-Seconds": 60, "Billing-Seconds": 50,
            "Hangup-Cause": "NORMAL_CLEARING",
            "Custom-Channel-Vars": {"Account-ID": account["_id"]}}))
        if len(batch) == 5000:
            writer.write(batch)
            batch = []
    writer.write(batch)
    print(f"set-up: {n_cdrs} CDRs in {time.monotonic() - t0:.0f} s")
    couch = get_couch()
    couch.timeout = (3.0, 3600.0)
    t0 = time.monotonic()
    db = cdrs.modb(account["_id"], month)
    requests.get(f"{couch.db_url(db)}/_design/cdrs/_view/by_time", params={"limit": 1},
                 timeout=3600)
    requests.get(f"{couch.db_url('sip_auth')}/_design/credentials/_view/by_realm_user",
                 params={"limit": 1}, timeout=3600)
    print(f"set-up: views built in {time.monotonic() - t0:.0f} s")
    return account, db, start, end


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--cdrs", type=int, default=200_000)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--pages", type=int, default=100, help="CDR pages per pass")
    parser.add_argument("--pbx", action="store_true", help="the PBX endpoints instead")
    parser.add_argument("--users", type=int, default=200, help="users of --pbx")
    args = parser.parse_args()
    reset_bench_resources()
    if args.pbx:
        pbx(args.users, args.passes)
        return
    account, db, start, end = setup(args.devices, args.cdrs)
    key, _ = api_keys.create(account["realm"])
    api = Proc("api", api_argv(settings, str(VENV_BIN / "python"), f"127.0.0.1:{PORT}", 2))
    base = f"http://127.0.0.1:{PORT}"
    for _ in range(100):
        try:
            if requests.get(f"{base}/v1/health", timeout=2).ok:
                break
        except requests.RequestException:
            time.sleep(0.2)
    couch = get_couch()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    bare = requests.Session()
    try:
        dev_api, dev_floor = Result("devices api"), Result("devices floor")
        view = f"{couch.db_url('sip_auth')}/_design/credentials/_view/by_realm_user"
        realm = account["realm"]
        for _ in range(args.passes):
            cursor = None
            while True:
                params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
                page = timed(session, f"{base}/v1/accounts/{account['_id']}/devices", dev_api,
                             params=params)
                startkey = [realm, cursor] if cursor else [realm]
                timed(bare, view, dev_floor, params={
                    "startkey": json.dumps(startkey), "endkey": json.dumps([realm, {}]),
                    "limit": 102 if cursor else 101})
                cursor = page["next_cursor"]
                if not cursor:
                    break
        cdr_api, cdr_floor = Result("cdrs api"), Result("cdrs floor")
        view = f"{couch.db_url(db)}/_design/cdrs/_view/by_time"
        got = 0
        for _ in range(args.passes):
            cursor = None
            last_key = None
            for _ in range(args.pages):
                params = {"since": start, "until": end, "limit": 100,
                          **({"cursor": cursor} if cursor else {})}
                page = timed(session, f"{base}/v1/accounts/{account['_id']}/cdrs", cdr_api,
                             params=params)
                got += len(page["data"])
                lo = last_key or [start]
                floor = timed(bare, view, cdr_floor, params={
                    "startkey": json.dumps(lo), "endkey": json.dumps([end]),
                    "include_docs": "true", "limit": 102 if last_key else 101})
                last_key = floor["rows"][min(100, len(floor["rows"]) - 1)]["key"]
                cursor = page["next_cursor"]
                if not cursor:
                    break
        for label, api_r, floor_r in (("devices, page of 100 of 10,000", dev_api, dev_floor),
                                      ("CDRs, month of 200,000, page of 100", cdr_api,
                                       cdr_floor)):
            print(f"{label}: API p50 {api_r.p50:.1f} ms p99 {api_r.p99:.1f} ms "
                  f"({api_r.answered}/{api_r.sent} ok) | bare CouchDB p50 {floor_r.p50:.1f} ms "
                  f"p99 {floor_r.p99:.1f} ms | ratio p50 {api_r.p50 / floor_r.p50:.2f}x")
        print(f"(CDR records read through the API: {got})")
    finally:
        api.stop()


if __name__ == "__main__":
    main()
