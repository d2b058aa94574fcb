"""The bridge's disk spool (switch_bridge/spool.py): what it must publish while RabbitMQ is
unreachable waits on disk, in order, also across a bridge that dies meanwhile.

The unit tests write real segment files; the integration test cuts one bridge from
RabbitMQ with a TCP proxy (the broker and every other session carry on), sends events,
SIGKILLs the bridge while it is cut off, and starts a new one on the same spool directory:
every event reaches RabbitMQ, in the order FreeSWITCH sent it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from switch_bridge import spool as spool_mod
from switch_bridge.spool import Record, Spool
from tests import faultkit, support
from tests.bridgekit import metrics, start_bridge
from tests.esl_standin import EslStandIn


def record(n: int) -> Record:
    return Record(f'{{"n":{n}}}'.encode(), "callevt", f"call.X.{n}", {"h": n},
                  {"delivery_mode": 2}, "event", ("node", ["core", n]))


def test_records_come_back_in_order_across_segments(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_mod, "SEGMENT_BYTES", 300)
    sp = Spool(tmp_path, 1 << 20)
    for n in range(40):
        assert sp.append(record(n))
    assert sp.pending == 40 and len(list(tmp_path.glob("*.spool"))) > 3
    got: list[Record] = []
    while sp.pending:
        got += sp.read(7)
    assert [int(r.key.rsplit(".", 1)[1]) for r in got] == list(range(40))
    assert got[0].body == b'{"n":0}' and got[0].headers == {"h": 0}
    assert got[0].mark == ("node", ("core", 0))
    # each finished segment is named once, on its last record; forgetting deletes it
    done = [r.segment_done for r in got if r.segment_done is not None]
    assert len(done) == len(set(done)) == len(list(tmp_path.glob("*.spool")))
    for path in done:
        sp.forget(path)
    assert not list(tmp_path.glob("*.spool")) and sp.bytes == 0
    # written after everything was read: a new segment, read again
    assert sp.append(record(99))
    assert [r.key for r in sp.read(10)] == ["call.X.99"]


def test_a_new_spool_finds_what_the_last_run_left(tmp_path: Path) -> None:
    first = Spool(tmp_path, 1 << 20)
    for n in range(5):
        first.append(record(n))
    first.close()
    # a crash in the middle of a write: a torn record at the end of the segment
    segment = next(tmp_path.glob("*.spool"))
    with open(segment, "ab") as f:
        f.write(b"\x00\x00\x01\x00{\"b\":")
    second = Spool(tmp_path, 1 << 20)
    assert second.pending == 5 and second.stats["left_by_previous_run"] == 5
    got = second.read(100)
    assert [r.key for r in got] == [f"call.X.{n}" for n in range(5)]
    assert second.stats["corrupt"] == 1


def test_a_full_spool_refuses_and_counts(tmp_path: Path) -> None:
    sp = Spool(tmp_path, 1000)
    accepted = sum(sp.append(record(n)) for n in range(50))
    assert 0 < accepted < 50
    assert sp.stats["refused"] == 50 - accepted
    assert sp.bytes <= 1000


def _sent_order(counter: faultkit.EventCounter, calls: list[str]) -> list[str]:
    return sorted(calls, key=lambda c: counter.arrivals.get(c, float("inf")))


def test_bridge_spools_while_rabbitmq_is_cut_and_survives_its_own_death(tmp_path: Path) -> None:
    amqp_url = os.environ["WHISTLE_AMQP_URL"]
    proxy = faultkit.TcpProxy()
    spool_dir = tmp_path / "spool"
    standin = EslStandIn(hostname=support.unique("fs-spool")).start()
    env = {"WHISTLE_AMQP_URL": proxy.url(amqp_url), "WHISTLE_SPOOL_DIR": str(spool_dir),
           "WHISTLE_SPOOL_MAX_MB": "16"}
    bridge, port = start_bridge(standin, name="bridge-spool-1", **env)
    counter = faultkit.EventCounter(amqp_url, key="call.CHANNEL_ANSWER.#")
    second = None
    try:
        standin.wait_for_connections(1, timeout=10)
        calls: list[str] = []

        def send(n: int) -> None:
            for _ in range(n):
                call = f"spool-{support.unique('c')}"
                faultkit.send_call_event(standin, call)
                calls.append(call)
                time.sleep(0.005)

        send(50)
        assert not counter.wait_for(set(calls), timeout=20)
        proxy.cut()
        support.wait_until(lambda: metrics(port)["whistle_bridge_amqp_connected"] == 0,
                           timeout=30, what="the bridge to notice RabbitMQ is gone")
        before = len(calls)
        send(300)
        standin.flush()
        support.wait_until(lambda: metrics(port)["whistle_bridge_spooled_messages"] >= 300,
                           timeout=20, what="300 events spooled")
        spooled = metrics(port)["whistle_bridge_spooled_messages"]
        bridge.kill(signal.SIGKILL)          # the bridge dies with RabbitMQ still away
        assert list(spool_dir.glob("*.spool"))
        assert not any(counter.seen.get(c) for c in calls[before:])
        proxy.mend()
        second, port2 = start_bridge(standin, name="bridge-spool-2", **env)
        missing = counter.wait_for(set(calls), timeout=60)
        support.wait_until(lambda: not list(spool_dir.glob("*.spool")), timeout=20,
                           what="the spool emptied")
        after = calls[before:]
        order = _sent_order(counter, after)
        faultkit.figures("spool_bridge_killed_while_cut", events_sent=len(calls),
                         events_sent_while_cut=len(after), spooled=spooled,
                         events_lost=len(missing),
                         duplicates=sum(n - 1 for n in counter.seen.values() if n > 1))
        assert not missing, f"{len(missing)} events lost"
        assert spooled >= 300
        assert order == after, "spooled events published out of order"
        assert "left by the previous run" in second.output()
    finally:
        counter.close()
        if second is not None:
            second.stop()
        bridge.stop()
        standin.stop()
        proxy.close()
