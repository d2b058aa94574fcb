"""Call detail records: the hangup fields the bridge adds (real captures), one record per leg
written by a real cdr worker from events on ``callevt`` (idempotent, partial ones flagged,
never dropped), read back by the data library and ``whistle cdr list``; the live index of
calls in progress; retention of the monthly databases."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import schemas
from switch_bridge.freeswitch import translate
from tests import support
from tests.test_events import CASES, capture
from whistle_tasks.core import amqp
from whistle_tasks.core.couch import get_couch
from whistle_tasks.data import calls, cdrs
from whistle_tasks.ops import provisioning
from whistle_tasks.whapps.cdr import record, retention


def hangups(fixtures_dir: Path) -> list[dict]:
    out = []
    for case in CASES:
        for fmt in ("plain", "json"):
            for event in capture(fixtures_dir, case, fmt):
                if event.name == "CHANNEL_HANGUP_COMPLETE":
                    out.append(translate.call_event(event, node="n")[1])
    return out


def test_hangup_complete_carries_what_a_record_needs(fixtures_dir: Path) -> None:
    msgs = hangups(fixtures_dir)
    assert len(msgs) >= 8
    for msg in msgs:
        schemas.validate(msg)
        assert msg["Channel-Created-Time"] <= msg["Channel-Hangup-Time"]
        assert msg["Read-Codec"] and msg["Write-Codec"]
    dispositions = [m["Hangup-Disposition"] for m in msgs if "Hangup-Disposition" in m]
    assert len(dispositions) >= len(msgs) // 2
    assert all(d.startswith(("send_", "recv_")) for d in dispositions)
    legs = {m["Call-ID"]: m for m in msgs if m["Call-ID"].startswith(("6432", "4240"))}
    a_leg = legs["42407c87-1e86-48ab-a5fa-8189b82ba543"]   # 1000 calling in
    assert a_leg["SIP-Status"] == 200 and a_leg["User-Agent"] == "sipp-capture"
    assert a_leg["Hangup-Disposition"] == "recv_bye"
    b_leg = legs["643295ff-291b-4a59-9976-ce22163dca28"]
    assert b_leg["Other-Leg-Call-ID"] == a_leg["Call-ID"]
    assert b_leg["Channel-Answered-Time"] == pytest.approx(1795687942.362592)


def test_a_record_of_each_leg_says_who_hung_up(fixtures_dir: Path) -> None:
    recs = {r["_id"]: r for r in map(record.from_event, hangups(fixtures_dir))}
    a_leg = recs["42407c87-1e86-48ab-a5fa-8189b82ba543"]
    b_leg = recs["643295ff-291b-4a59-9976-ce22163dca28"]
    # the caller (1000) sent BYE: the inbound leg received it, the outbound leg was sent one
    assert a_leg["hung_up_by"] == b_leg["hung_up_by"] == "caller"
    assert a_leg["billing_seconds"] == 3 and a_leg["duration_seconds"] == 4
    assert a_leg["start"] < a_leg["answer"] < a_leg["end"]
    assert a_leg["dialled_number"] == "1001"


def test_a_record_lists_what_the_leg_produced(fixtures_dir: Path) -> None:
    """The voicemail message and the recording a leg left (Custom-Channel-Vars the callflow
    modules set) are in the record, each by its field and together in ``produced``."""
    msg = hangups(fixtures_dir)[0]
    plain = record.from_event(msg)
    assert "produced" not in plain and "voicemail_message_id" not in plain
    message_id, recording_id = uuid.uuid4().hex, "media-welcome"
    msg = {**msg, "Custom-Channel-Vars": {**(msg.get("Custom-Channel-Vars") or {}),
                                          "Voicemail-Message-ID": message_id,
                                          "Recording-ID": recording_id}}
    rec = record.from_event(msg)
    assert rec["voicemail_message_id"] == message_id and rec["recording_id"] == recording_id
    assert rec["produced"] == [f"voicemail:{message_id}", f"recording:{recording_id}"]
    row = dict(zip(cdrs.CSV_FIELDS, cdrs.csv_row({**rec, "id": rec["_id"]}), strict=True))
    assert row["produced"] == f"voicemail:{message_id}; recording:{recording_id}"


def test_a_malformed_or_partial_event_still_gives_a_flagged_record() -> None:
    raw = record.from_event(b"\x00not json at all")
    assert raw["partial"] and raw["_id"].startswith("malformed-")
    assert raw["pvt_db"].startswith("cdrs-")
    assert record.from_event(b"\x00not json at all")["_id"] == raw["_id"]  # idempotent
    half = record.from_event({"Event-Name": "CHANNEL_HANGUP_COMPLETE", "Call-ID": "abc",
                              "Billing-Seconds": "x12", "Timestamp": 1796000000})
    assert half["_id"] == "abc" and half["partial"]
    assert any("invalid call_event" in f for f in half["flags"])
    assert any("billing_seconds" in f for f in half["flags"])
    assert half["end"] == 1796000000


@pytest.fixture(scope="module")
def cdr_worker(clean_services: None):  # noqa: ANN201
    worker = support.start_worker("cdr", name="cdr", pool="threads", concurrency=2,
                                  env={"WHISTLE_CDR_LINGER_MS": "100"})
    support.wait_until(lambda: "cdr consumer: consuming" in worker.output(), 20,
                       what="the cdr consumer")
    yield worker
    worker.stop()
    assert "Traceback" not in worker.output(), worker.output()[-3000:]


def publish_events(events: list[dict | bytes]) -> None:
    publisher = amqp.Publisher(support_amqp_url(), confirm=True)
    try:
        for msg in events:
            if isinstance(msg, bytes):
                publisher.publish(msg, amqp.CALLEVT.name, "call.CHANNEL_HANGUP_COMPLETE.x",
                                  persistent=True)
                continue
            key = f"call.{msg['Event-Name']}.{msg['Call-ID']}"
            publisher.publish_api(msg, amqp.CALLEVT, key, persistent=True)
    finally:
        publisher.close()


def support_amqp_url() -> str:
    from whistle_tasks.core.config import settings

    return settings.amqp_url


def hangup(account_id: str | None, call_id: str, *, end: float, caller: str = "1000",
           callee: str = "2000") -> dict:
    ccvs = {"Account-ID": account_id, "Dialled-Number": callee} if account_id else {}
    return schemas.build("call_event", {
        "Call-ID": call_id, "Timestamp": end, "Call-Direction": "inbound",
        "Caller-ID-Number": caller, "Callee-ID-Number": callee,
        "Channel-Created-Time": end - 30, "Channel-Answered-Time": end - 25,
        "Channel-Hangup-Time": end, "Duration-Seconds": 30, "Billing-Seconds": 25,
        "Hangup-Cause": "NORMAL_CLEARING", "Hangup-Disposition": "recv_bye",
        "Custom-Channel-Vars": ccvs}, **{"Event-Name": "CHANNEL_HANGUP_COMPLETE"})


def test_the_worker_writes_one_record_per_leg_once(cdr_worker: support.Process) -> None:
    realm = f"{support.unique('cdr')}.example.com"
    account = provisioning.create_account("CDR", realm)["_id"]
    now = time.time()
    legs = [hangup(account, str(uuid.uuid4()), end=now - i, caller=f"10{i:02d}")
            for i in range(20)]
    publish_events(legs + legs[:5])            # five redelivered
    garbage = f"not json {uuid.uuid4()}".encode()
    stray = hangup(None, str(uuid.uuid4()), end=now)
    publish_events([garbage, stray])

    def stored() -> list[dict]:
        return list(cdrs.iterate(account, now - 3600, now + 60))

    support.wait_until(lambda: len(stored()) >= 20, 20, what="20 records")
    time.sleep(0.5)
    records = stored()
    assert len(records) == 20                                   # no duplicate
    assert [r["end"] for r in records] == sorted(r["end"] for r in records)
    assert {r["id"] for r in records} == {leg["Call-ID"] for leg in legs}
    assert all(not r["partial"] and r["account_id"] == account for r in records)
    # the unowned ones are kept, flagged
    month = cdrs.month_of(now)
    unowned = get_couch().all_docs(cdrs.modb(None, month), include_docs=True)
    docs = {row["id"]: row["doc"] for row in unowned if not row["id"].startswith("_design")}
    assert docs[stray["Call-ID"]]["partial"]
    assert any(d.get("raw", "").startswith("not json") for d in docs.values())

    page, cursor = cdrs.query(account, now - 3600, now + 60, limit=7)
    assert len(page) == 7 and cursor
    rest = []
    while cursor:
        more, cursor = cdrs.query(account, now - 3600, now + 60, limit=7, cursor=cursor)
        rest += more
    assert [r["id"] for r in page + rest] == [r["id"] for r in records]
    by_caller, _ = cdrs.query(account, now - 3600, now + 60, caller="1003")
    assert [r["caller_id_number"] for r in by_caller] == ["1003"]

    out = subprocess.run([str(support.VENV_BIN / "whistle"), "cdr", "list", "--realm", realm,
                          "--since", "-1h", "--csv"], capture_output=True, text=True,
                         check=True).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 20 and rows[0]["hangup_cause"] == "NORMAL_CLEARING"
    table = subprocess.run([str(support.VENV_BIN / "whistle"), "cdr", "list", "--realm", realm,
                            "--since", "-1h", "--number", "1004"], capture_output=True,
                           text=True, check=True).stdout
    assert "1004" in table and "1005" not in table


def test_the_live_index_follows_a_call(cdr_worker: support.Process) -> None:
    account = uuid.uuid4().hex
    call_id = str(uuid.uuid4())
    base = {"Call-ID": call_id, "Caller-ID-Number": "1000", "Call-Direction": "inbound",
            "Custom-Channel-Vars": {"Account-ID": account}}
    create = schemas.build("call_event", base, **{"Event-Name": "CHANNEL_CREATE"})
    answer = schemas.build("call_event", base, **{"Event-Name": "CHANNEL_ANSWER"})
    publish_events([create, answer])
    support.wait_until(lambda: [c for c in calls.in_progress(account)
                                if c["state"] == "answered"], 10, what="the call answered")
    assert calls.get(call_id)["account_id"] == account
    publish_events([hangup(account, call_id, end=time.time())])
    support.wait_until(lambda: not calls.in_progress(account), 10, what="the call gone")
    assert calls.get(call_id) is None


def test_retention_drops_old_months_whole() -> None:
    account = uuid.uuid4().hex
    for month in ("202001", "202002", "209912"):
        cdrs.ensure_modb(cdrs.modb(account, month))
    kept_from = retention.oldest_kept(12)
    dropped = {d.month for d in retention.expire(12) if account in d.db.replace("/", "")}
    assert dropped == {"202001", "202002"}
    left = {m for _, a, m in cdrs.modbs() if a == account}
    assert left == {"209912"} and kept_from > "202002"


def test_months_and_names() -> None:
    start, end = cdrs.month_bounds("202612")
    assert cdrs.months_between(start, end - 1) == ["202612"]
    assert cdrs.months_between(start - 1, end) == ["202611", "202612", "202701"]
    account = "0123456789abcdef0123456789abcdef"
    name = cdrs.modb(account, "202611")
    assert name == "account/01/23/456789abcdef0123456789abcdef-202611"
    assert cdrs.parse_modb(name) == (account, "202611")
    assert cdrs.parse_modb(name.replace("/", "")) == (account, "202611")
    assert cdrs.parse_modb("cdrs-202611") == (None, "202611")
    assert cdrs.parse_modb("account/01/23/456789abcdef0123456789abcdef") is None
    assert json.loads(json.dumps(cdrs.decode_cursor(cdrs.encode_cursor("202611", [1.5, "x"]))))
    with pytest.raises(cdrs.CursorError):
        cdrs.decode_cursor("bm90IG91cnM")
