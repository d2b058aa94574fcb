"""How fast the bridge reads FreeSWITCH events: bare parse rate of the real captures.

    .venv/bin/python bench/esl_parse.py [--runs 7] [--seconds 0.5] [--wire]

For each format (plain, json) the event frames of every ``modern/*/esl_*`` capture are
fed through ``FrameParser`` in 64 KiB pieces (as ``recv`` would hand them over) and every
event is parsed with ``parse_event``; the figure is the median of ``--runs`` runs. Also
shown, for scale: framing alone, ``json.loads`` alone, and greenswitch 0.0.19's reader on
the same plain bytes (with how many values it gets wrong).

``--wire`` adds the end-to-end rate of one ``EslNode`` (socket, framing, parsing,
dispatch) reading the events from a plain TCP server in another process.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from switch_bridge.freeswitch.esl import protocol as P  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "freeswitch" / "modern"  # the real captures
CHUNK = 64 * 1024


def corpus(fmt: str) -> tuple[bytes, int]:
    """All event frames of the captures of one format, concatenated; and their count."""
    frames = []
    for path in sorted(FIXTURES.glob(f"*/esl_*_{fmt}.txt")):
        frames += [f for f in P.FrameParser().feed(path.read_bytes())
                   if f.content_type == f"text/event-{fmt}"]
    return b"".join(f.to_bytes() for f in frames), len(frames)


def timed(func, seconds: float, runs: int) -> float:
    """Median seconds of one call of ``func`` over ``runs`` runs of ~``seconds`` each."""
    func()  # warm up
    start = time.perf_counter()
    func()
    once = max(time.perf_counter() - start, 1e-6)
    repeat = max(1, int(seconds / once))
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(repeat):
            func()
        samples.append((time.perf_counter() - start) / repeat)
    return statistics.median(samples)


def parse_stream(data: bytes) -> int:
    parser = P.FrameParser()
    count = 0
    for i in range(0, len(data), CHUNK):
        for frame in parser.feed(data[i:i + CHUNK]):
            if P.parse_event(frame) is not None:
                count += 1
    return count


def frame_stream(data: bytes) -> int:
    parser = P.FrameParser()
    return sum(len(parser.feed(data[i:i + CHUNK])) for i in range(0, len(data), CHUNK))


def greenswitch_read(data: bytes) -> list:
    """greenswitch's own reader over the bytes (its socket file replaced by BytesIO)."""
    import gevent.event
    from greenswitch.esl import ESLProtocol

    class NoSocket:
        def close(self):
            pass

    proto = ESLProtocol()
    proto.sock, proto.sock_file, proto.connected = NoSocket(), io.BytesIO(data), True
    proto._commands_sent = [gevent.event.AsyncResult() for _ in range(8)]
    proto.receive_events()
    out = []
    while not proto._esl_event_queue.empty():
        event = proto._esl_event_queue.get()
        if event.headers.get("Content-Type") == "text/event-plain":
            out.append(event)
    return out


def greenswitch_differences(data: bytes) -> tuple[int, int, int]:
    """(values wrong, events with a wrong value, events) versus split-then-decode."""
    theirs = greenswitch_read(data)
    ours = [e for e in map(P.parse_event, P.FrameParser().feed(data)) if e is not None]
    values = events = 0
    for g, o in zip(theirs, ours, strict=True):
        wrong = sum(1 for n, v in o.headers.items() if g.headers.get(n) != v)
        values += wrong
        events += bool(wrong)
    return values, events, len(ours)


# ------------------------------------------------------------------ over a socket


def _serve(port_queue: multiprocessing.Queue, data: bytes, repeat: int) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port_queue.put(server.getsockname()[1])
    conn, _ = server.accept()
    conn.sendall(b"Content-Type: auth/request\n\n")
    for _ in range(2):  # auth, events
        buf = b""
        while not buf.endswith(b"\n\n"):
            buf += conn.recv(4096)
        conn.sendall(b"Content-Type: command/reply\nReply-Text: +OK\n\n")
    for _ in range(repeat):
        conn.sendall(data)
    conn.recv(1)  # wait for the client to hang up
    conn.close()


def wire_rate(fmt: str, data: bytes, count: int, repeat: int) -> float:
    import gevent

    from switch_bridge.freeswitch.esl.node import EslNode

    ports: multiprocessing.Queue = multiprocessing.Queue()
    child = multiprocessing.Process(target=_serve, args=(ports, data, repeat), daemon=True)
    child.start()
    port = ports.get(timeout=10)
    total = count * repeat
    seen = [0]
    done = gevent.event.Event()
    marks: dict[str, float] = {}

    def on_event(node: EslNode, event: P.Event) -> None:
        seen[0] += 1
        if seen[0] == 1:
            marks["first"] = time.perf_counter()
        if seen[0] == total:
            marks["last"] = time.perf_counter()
            done.set()

    node = EslNode("127.0.0.1", port, "bench", on_event=on_event, event_names=["ALL"],
                   fmt=fmt, heartbeat_timeout=600).start()
    done.wait(120)
    node.stop()
    child.join(timeout=5)
    if not done.is_set():
        raise RuntimeError(f"only {seen[0]} of {total} events arrived")
    return (total - 1) / (marks["last"] - marks["first"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--wire", action="store_true", help="also measure an EslNode")
    args = parser.parse_args()
    if not FIXTURES.is_dir():
        sys.exit(f"captures not found at {FIXTURES}")

    print(f"python {sys.version.split()[0]}, median of {args.runs} runs\n")
    results = {}
    for fmt in ("plain", "json"):
        data, count = corpus(fmt)
        assert parse_stream(data) == count
        per_run = timed(lambda d=data: parse_stream(d), args.seconds, args.runs)
        framing = timed(lambda d=data: frame_stream(d), args.seconds, args.runs)
        results[fmt] = (data, count)
        print(f"{fmt:5}  {count} events, {len(data) / count / 1024:.1f} KiB/event avg")
        print(f"       frame + parse : {count / per_run:9,.0f} events/s "
              f"{len(data) / per_run / 1e6:7.1f} MB/s")
        print(f"       framing only  : {count / framing:9,.0f} frames/s "
              f"{len(data) / framing / 1e6:7.1f} MB/s")
        if fmt == "json":
            bodies = [f.body for f in P.FrameParser().feed(data)]
            loads = timed(lambda b=bodies: [json.loads(x) for x in b], args.seconds, args.runs)
            print(f"       json.loads only: {count / loads:8,.0f} events/s (dict, no repeats)")

    try:
        import greenswitch  # noqa: F401
    except ImportError:
        print("\ngreenswitch not installed: comparison skipped")
    else:
        data, count = results["plain"]
        gs = timed(lambda d=data: greenswitch_read(d), args.seconds, args.runs)
        wrong, events, total = greenswitch_differences(data)
        case_c = (FIXTURES / "c_call_2000_tone_park" / "esl_c_plain.txt").read_bytes()
        c_wrong, c_events, c_total = greenswitch_differences(case_c)
        print(f"\ngreenswitch 0.0.19 reader (BytesIO, no socket): {count / gs:,.0f} events/s")
        print(f"  values different from split-then-decode: {wrong} in {events} of {total} "
              f"events (all captures); case c: {c_wrong} in {c_events} of {c_total}")

    if args.wire:
        print()
        for fmt in ("plain", "json"):
            data, count = results[fmt]
            rate = wire_rate(fmt, data, count, repeat=max(1, 20000 // count))
            print(f"EslNode over TCP, {fmt:5}: {rate:9,.0f} events/s (socket+frame+parse+dispatch)")


if __name__ == "__main__":
    main()
