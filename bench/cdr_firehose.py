"""CDR write throughput: a firehose of hangup events → records written by a real cdr worker.

    .venv/bin/python bench/cdr_firehose.py [--rate 500] [--seconds 30] [--burst 20000]

1. **open loop at ``--rate``** (default 500 calls/s, the target) for ``--seconds``: hangup
   events (``CHANNEL_HANGUP_COMPLETE`` call events as the bridge publishes them, persistent,
   confirmed) for 50 accounts go to ``callevt``; every record is then counted in the
   monthly databases: written, lost (never written), and how long after the last event the
   last record landed (the worker kept up when that lag stays around one batch linger).
2. **burst**: ``--burst`` events published as fast as the publisher goes, then the time
   until every record is written → the worker's records/s.
3. **floor, same run**: the same records written by one process straight to CouchDB with
   ``_bulk_docs`` in batches of the worker's size (no AMQP, no worker) → records/s.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402 - the bench environment first
    BENCH_ENV,
    VENV_BIN,
    Proc,
    reset_bench_resources,
)
from whistle_tasks.core import amqp  # noqa: E402
from whistle_tasks.core.couch import get_couch  # noqa: E402
from whistle_tasks.data import cdrs  # noqa: E402
from whistle_tasks.whapps.cdr import record, writer  # noqa: E402

ACCOUNTS = [uuid.uuid4().hex for _ in range(50)]


def event(i: int, now: float) -> dict:
    account = ACCOUNTS[i % len(ACCOUNTS)]
    return {"App-Name": "bench", "App-Version": "1", "Event-Category": "call_event",
            "Event-Name": "CHANNEL_HANGUP_COMPLETE", "Msg-ID": uuid.uuid4().hex,
            "Call-ID": str(uuid.uuid4()), "Timestamp": now, "Call-Direction": "inbound",
            "Caller-ID-Number": f"1{i % 1000:03d}", "Callee-ID-Number": "2000",
            "Channel-Created-Time": now - 60, "Channel-Answered-Time": now - 50,
            "Channel-Hangup-Time": now, "Duration-Seconds": 60, "Billing-Seconds": 50,
            "Hangup-Cause": "NORMAL_CLEARING", "Hangup-Disposition": "recv_bye",
            "Read-Codec": "PCMU", "Write-Codec": "PCMU",
            "Custom-Channel-Vars": {"Account-ID": account, "Dialled-Number": "2000"}}


def count_records(month: str) -> int:
    couch = get_couch()
    total = 0
    for account in ACCOUNTS:
        try:
            info = couch.db_info(cdrs.modb(account, month))
        except Exception:  # noqa: BLE001, S112 - not created yet
            continue
        total += int(info.get("doc_count", 0)) - 1   # the design document
    return total


def wait_written(expected: int, month: str, timeout: float) -> tuple[int, float]:
    deadline = time.monotonic() + timeout
    while True:
        n = count_records(month)
        if n >= expected or time.monotonic() > deadline:
            return n, time.monotonic()
        time.sleep(0.1)


def publish(publisher: amqp.Publisher, msgs: list[dict], rate: float | None) -> float:
    start = time.monotonic()
    for i, msg in enumerate(msgs):
        if rate:
            due = start + i / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        publisher.publish_api(msg, amqp.CALLEVT, f"call.CHANNEL_HANGUP_COMPLETE.{msg['Call-ID']}",
                              persistent=True)
    return time.monotonic()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--burst", type=int, default=20000)
    args = parser.parse_args()
    reset_bench_resources()
    from kombu import Connection

    with Connection(BENCH_ENV["WHISTLE_AMQP_URL"]) as conn:   # no backlog of an earlier run
        channel = conn.channel()
        for queue in ("cdr.hangups", "cdr.calls"):
            try:
                channel.queue_delete(queue)
            except Exception:  # noqa: BLE001, S110 - not there
                pass
    now = time.time()
    month = cdrs.month_of(now)
    publisher = amqp.Publisher(BENCH_ENV["WHISTLE_AMQP_URL"], confirm=True)
    from whistle_tasks.whapps.cdr.consumer import calls_queue, hangup_queue

    with Connection(BENCH_ENV["WHISTLE_AMQP_URL"]) as conn:   # declared: nothing is lost
        hangup_queue()(conn.channel()).declare()
        calls_queue()(conn.channel()).declare()
    # 2 first: the burst waits in the queue, then a worker starts and drains it
    msgs = [event(i, now) for i in range(args.burst)]
    publish(publisher, msgs, None)
    t0 = time.monotonic()
    proc = Proc("cdr-worker", [str(VENV_BIN / "celery"), "-A", "whistle_tasks", "worker", "-Q",
                               "cdr", "-P", "threads", "-c", "2", "-n", "bench-cdr@%h", "-l",
                               "INFO", "--without-mingle", "--without-gossip"],
                env={"WHISTLE_LOG_LEVEL": "INFO"}, ready="cdr consumer: consuming")
    started = time.monotonic()
    try:
        written, done = wait_written(args.burst, month, 600)
        burst_rate = written / (done - started)
        print(f"burst: {args.burst} events queued, then a cdr worker started "
              f"({started - t0:.1f} s) and wrote {written} records in {done - started:.1f} s "
              f"→ {burst_rate:.0f} records/s, {args.burst - written} lost")
        # 1. open loop at the target rate
        n = int(args.rate * args.seconds)
        msgs = [event(i, now) for i in range(n)]
        before = count_records(month)
        t0 = time.monotonic()
        last_sent = publish(publisher, msgs, args.rate)
        sent_rate = n / (last_sent - t0)
        written, done = wait_written(before + n, month, 120)
        print(f"open loop {args.rate:.0f}/s for {args.seconds:.0f} s: {n} events sent at "
              f"{sent_rate:.0f}/s, {written - before} records written, {before + n - written} "
              f"lost; last record {(done - last_sent) * 1000:.0f} ms after the last event")
    finally:
        publisher.close()
        proc.stop()
    # 3. floor: the same records, straight to CouchDB in the worker's batch size
    floor_now = now - 86400 * 40            # another month: fresh databases like the worker's
    records = [record.from_event(event(i, floor_now)) for i in range(args.burst)]
    t0 = time.monotonic()
    for start in range(0, len(records), 500):
        writer.write(records[start:start + 500])
    floor_rate = len(records) / (time.monotonic() - t0)
    print(f"floor (bare _bulk_docs, batches of 500, one process): {floor_rate:.0f} records/s")
    print(f"cdr worker burst / floor: {burst_rate / floor_rate:.0%}")


if __name__ == "__main__":
    main()
