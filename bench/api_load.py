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
    args = parser.parse_args()
    reset_bench_resources()
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
