"""Event firehose: real FreeSWITCH event streams replayed over ESL at full speed into the
bridge, which parses them and publishes the call events to RabbitMQ (confirmed).

    .venv/bin/python bench/event_firehose.py [--events 100000] [--repeats 3] [--fmt json]

The stream is the call-event frames of the real captures (modern/c..f, in the format the
bridge subscribes with: only the events the bridge publishes as ``call_event``s, so
ignored events do not count toward the rate), repeated; the ESL stand-in writes it as fast
as the socket takes it. The clock runs from the first byte written to the *last publisher
confirm* (the bridge's ``whistle_bridge_confirmed_messages`` gauge reaching the stream's
count: RabbitMQ holds every event), and every event is counted again on arrival in a queue
bound to ``callevt`` (sent = confirmed = received). Beside it, alternating with it run by
run, the bare parse rate of the same bytes on one core (framing + decoding + translation,
no I/O); the ratio is the median of the per-run ratios. Target (issue #13): ≥ 90 % of the
bare parse rate.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

CASES = ("c_call_2000_tone_park", "d_call_1001_bridge", "e_call_9999_busy",
         "f_esl_bgapi_sendmsg")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stream_frames(fmt: str) -> list:
    from switch_bridge.freeswitch import translate as events
    from switch_bridge.freeswitch.esl.protocol import parse_event
    from tests.esl_standin import load_capture_events

    wanted = set(events.subscription())
    fixtures = common.CAPTURES
    frames = []
    for case in CASES:
        for frame in load_capture_events(fixtures / case / f"esl_{case[0]}_{fmt}.txt"):
            event = parse_event(frame)
            if event is not None and event.name in wanted \
                    and events.call_event(event, node="bench") is not None:
                frames.append(frame)
    return frames


def bare_parse_rate(data: bytes, count: int) -> tuple[float, int]:
    """Events/s of framing + decoding + translation of ``data`` in this process, and how
    many of them are call events (what must arrive on callevt)."""
    from switch_bridge.freeswitch import translate as events
    from switch_bridge.freeswitch.esl.protocol import FrameParser, parse_event

    parser = FrameParser()
    started = time.perf_counter()
    handled = calls = 0
    for i in range(0, len(data), 65536):
        for frame in parser.feed(data[i:i + 65536]):
            event = parse_event(frame)
            if event is not None:
                calls += events.call_event(event, node="bench") is not None
                handled += 1
    elapsed = time.perf_counter() - started
    assert handled == count, (handled, count)
    return handled / elapsed, calls


def confirmed_by_bridge(port: int) -> float:
    return bridge_counter(port, "whistle_bridge_confirmed_messages")


def bridge_counter(port: int, name: str) -> float:
    import requests

    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rpartition(" ")[2])
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fmt", default="json", choices=("json", "plain"))
    args = parser.parse_args()
    common.ensure_vhost()

    import requests

    from tests.esl_standin import EslStandIn

    frames = stream_frames(args.fmt)
    copies = max(1, args.events // len(frames))
    chunk = b"".join(f.to_bytes() for f in frames)
    data = chunk * copies
    total = len(frames) * copies
    print(f"stream: {total} events, {len(data) / 1e6:.1f} MB ({args.fmt}), "
          f"{len(data) / total / 1024:.1f} KiB/event")

    standin = EslStandIn(password="ClueCon").start()
    port = free_port()
    bridge = common.Proc("firehose-bridge", [sys.executable, "-m", "switch_bridge"], env={
        "WHISTLE_FS_NODES": f"127.0.0.1:{standin.port}:ClueCon", "WHISTLE_ESL_FORMAT": args.fmt,
        "WHISTLE_HTTP_LISTEN": f"127.0.0.1:{port}", "WHISTLE_EVENT_BUFFER": "1000000"})
    queue = f"bench-firehose-{uuid.uuid4().hex[:8]}"
    rates, parse_rates, lost, dropped = [], [], [], []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        standin.wait_for_connections(1, timeout=10)
        conn = common.amqp_connect()
        channel = conn.channel()
        channel.queue_declare(queue, durable=False, auto_delete=False,
                              arguments={"x-queue-mode": "lazy"})
        channel.queue_bind(queue, "callevt", "call.#")
        for run in range(args.repeats):
            bare, call_events = bare_parse_rate(data, total)
            assert call_events == total, (call_events, total)  # the stream is call events
            parse_rates.append(bare)
            channel.queue_purge(queue)
            dropped0 = bridge_counter(port, "whistle_bridge_dropped_messages")
            confirmed0 = last = confirmed_by_bridge(port)
            standin.send_raw(data)
            started = idle_since = time.perf_counter()
            while last - confirmed0 < total:
                time.sleep(0.02)
                now = confirmed_by_bridge(port)
                if now != last:
                    last, idle_since = now, time.perf_counter()
                elif time.perf_counter() - idle_since > 10:
                    break  # nothing confirmed for 10 s: what is missing is lost
            confirmed = last - confirmed0
            elapsed = idle_since - started
            time.sleep(0.5)
            _, in_queue, _ = channel.queue_declare(queue, passive=True)
            rates.append(confirmed / elapsed)
            lost.append(total - in_queue)
            dropped.append(bridge_counter(port, "whistle_bridge_dropped_messages") - dropped0)
            print(f"  run {run + 1}: {confirmed:.0f} of {total} call events confirmed in "
                  f"{elapsed:.2f}s = {confirmed / elapsed:,.0f}/s; {in_queue} arrived on "
                  f"callevt; bare parse {bare:,.0f}/s ({confirmed / elapsed / bare:.0%})",
                  flush=True)
        channel.queue_delete(queue)
        conn.close()
    finally:
        bridge.stop()
        standin.stop()
    rate, bare = statistics.median(rates), statistics.median(parse_rates)
    ratio = statistics.median(r / b for r, b in zip(rates, parse_rates, strict=True))
    print(f"\nevent firehose ({args.fmt}), {args.repeats} alternating runs of {total} call "
          "events")
    print(f"  bare parse (framing + decoding + translation, one core): {bare:>10,.0f} events/s")
    print(f"  bridge: ESL → parse → publish → last confirm:            {rate:>10,.0f} events/s")
    print(f"  ratio (median of the per-run ratios) = {ratio:.0%}  "
          f"[{', '.join(f'{r / b:.0%}' for r, b in zip(rates, parse_rates, strict=True))}]")
    sent = total * args.repeats
    print(f"  {sent} sent = {sent - sum(lost)} arrived on callevt + {sum(lost)} lost; "
          f"{sum(dropped):.0f} dropped by the bridge")
    print(f"  [{'met' if ratio >= 0.9 else 'MISSED'}] >= 90% of the bare parse rate")
    print(f"  [{'met' if sum(lost) == 0 else 'MISSED'}] every call event arrived")


if __name__ == "__main__":
    main()
