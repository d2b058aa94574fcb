"""Event firehose: real FreeSWITCH event streams replayed over ESL at full speed into the
bridge, which parses them and publishes the call events to RabbitMQ (confirmed).

    .venv/bin/python bench/event_firehose.py [--events 100000] [--repeats 3] [--fmt json]

The stream is the event frames of the real captures (modern/c..f, in the format the bridge
subscribes with), repeated; the ESL stand-in writes it as fast as the socket takes it. The
rate is events handled by the bridge per second (from the first to the last one published,
read from its own counters), and every published event is counted again on arrival in a
queue bound to ``callevt`` (sent = received). Beside it, in the same run, the bare parse
rate of the same bytes (framing + decoding, no I/O). Target (issue #3): ≥ 10,000 events/s
parsed and published.
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
            if event is not None and (event.name in wanted or event.name == "CUSTOM"):
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


def handled_by_bridge(port: int) -> float:
    return sum(bridge_counter(port, f'whistle_bridge_events_total{{outcome="{o}"}}')
               for o in ("published", "ignored", "invalid"))


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

    import amqp as pyamqp
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
    rates, parse_rates, lost = [], [], []
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
        conn = pyamqp.Connection("127.0.0.1:5672", userid="guest", password="guest",
                                 virtual_host="whistle_bench")
        conn.connect()
        channel = conn.channel()
        channel.queue_declare(queue, durable=False, auto_delete=False,
                              arguments={"x-queue-mode": "lazy"})
        channel.queue_bind(queue, "callevt", "call.#")
        for run in range(args.repeats):
            bare, call_events = bare_parse_rate(data, total)
            parse_rates.append(bare)
            channel.queue_purge(queue)
            handled0 = last = handled_by_bridge(port)
            standin.send_raw(data)
            started = idle_since = time.perf_counter()
            while last - handled0 < total:
                time.sleep(0.05)
                now = handled_by_bridge(port)
                if now != last:
                    last, idle_since = now, time.perf_counter()
                elif time.perf_counter() - idle_since > 5:
                    break
            handled = last - handled0
            elapsed = idle_since - started
            while bridge_counter(port, "whistle_bridge_buffered_messages") > 0:
                time.sleep(0.1)
            _, in_queue, _ = channel.queue_declare(queue, passive=True)
            rates.append(handled / elapsed)
            lost.append(call_events - in_queue)
            print(f"  run {run + 1}: {handled:.0f} of {total} events handled in {elapsed:.2f}s "
                  f"= {handled / elapsed:,.0f}/s; {in_queue} of {call_events} call events "
                  f"arrived on callevt; bare parse {bare:,.0f}/s")
        channel.queue_delete(queue)
        conn.close()
    finally:
        bridge.stop()
        standin.stop()
    rate, bare = statistics.median(rates), statistics.median(parse_rates)
    print(f"\nevent firehose ({args.fmt}), median of {args.repeats} runs of {total} events")
    print(f"  bare parse (framing + decoding + translation, one core): {bare:>10,.0f} events/s")
    print(f"  bridge: ESL → parse → publish (confirmed):               {rate:>10,.0f} events/s "
          f"({rate / bare:.0%} of bare)")
    print(f"  lost (call events that did not arrive on callevt): {sum(lost):.0f}")
    print(f"  [{'met' if rate >= 10_000 else 'MISSED'}] >= 10,000 events/s parsed and published")


if __name__ == "__main__":
    main()
