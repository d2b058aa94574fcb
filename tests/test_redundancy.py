"""Two bridges on one FreeSWITCH node (switch_bridge/redundancy.py): one active, one
standing by, and the loss of either loses no event.

Each test runs two bridge processes (``WHISTLE_BRIDGE_LEASE_MS=2000``) on one ESL stand-in,
which sends every event to every subscribed connection with one ``Event-Sequence``, as
FreeSWITCH does. A steady flow of call events (one new call each, every 10 ms) runs while
the active bridge is SIGKILLed, SIGSTOPped (hung), or cut from RabbitMQ (a TCP proxy in
front of the broker, so only that bridge loses it). A durable counting queue on
``callevt`` sees what reached RabbitMQ: every event sent must arrive (duplicates are
counted and bounded). The takeover time is from the fault to the first event, sent after
the fault, that reaches RabbitMQ. The figures are printed and kept in
``test-output/faults/`` (RELIABILITY.md quotes them)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from switch_bridge.freeswitch.esl.protocol import Event
from switch_bridge.redundancy import Window
from tests import faultkit, support
from tests.bridgekit import metrics, start_bridge
from tests.esl_standin import EslStandIn
from whistle_tasks.core import leases
from whistle_tasks.core.config import load
from whistle_tasks.ops import supervisor

LEASE_MS = 2000
#: the issue's target, checked loosely (the machine is shared and loaded): a takeover
#: that takes several times the lease is a bug, not load
TAKEOVER_BOUND_S = 4 * LEASE_MS / 1000.0


@dataclass
class Member:
    name: str
    proc: support.Process
    port: int
    proxy: faultkit.TcpProxy

    def health(self) -> str:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/health", timeout=2).text
        except requests.RequestException:
            return ""

    def role(self) -> str:
        for line in self.health().splitlines():
            words = line.split()
            if words[:1] == ["node"] and len(words) == 4:
                return words[3]
        return ""


class Flow:
    """Call events from the stand-in every ``period`` seconds, each a new call."""

    def __init__(self, standin: EslStandIn, period: float = 0.01) -> None:
        self.standin, self.period = standin, period
        self.calls: list[str] = []
        self.sent_at: dict[str, float] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="flow")

    def _run(self) -> None:
        while not self._stop.is_set():
            call = f"ha-{support.unique('c')}"
            self.sent_at[call] = time.monotonic()
            faultkit.send_call_event(self.standin, call)
            self.calls.append(call)
            time.sleep(self.period)

    def __enter__(self) -> Flow:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(5)
        self.standin.flush()


@contextlib.contextmanager
def pair(tag: str) -> Iterator[tuple[EslStandIn, list[Member], faultkit.EventCounter]]:
    amqp_url = os.environ["WHISTLE_AMQP_URL"]
    standin = EslStandIn(hostname=support.unique(f"fs-ha-{tag}")).start()
    members: list[Member] = []
    counter = faultkit.EventCounter(amqp_url, key="call.CHANNEL_ANSWER.#")
    try:
        for name in ("a", "b"):
            proxy = faultkit.TcpProxy()
            proc, port = start_bridge(standin, name=f"bridge-ha-{tag}-{name}",
                                      WHISTLE_AMQP_URL=proxy.url(amqp_url),
                                      WHISTLE_BRIDGE_LEASE_MS=str(LEASE_MS))
            members.append(Member(name, proc, port, proxy))
        standin.wait_for_connections(2, timeout=15)
        support.wait_until(lambda: sorted(m.role() for m in members) == ["active", "standby"],
                           timeout=30, what="one active bridge and one standby")
        yield standin, members, counter
    finally:
        counter.close()
        for m in members:
            with contextlib.suppress(ProcessLookupError):
                m.proc.kill(signal.SIGCONT)
            m.proc.stop()
            m.proxy.close()
        standin.stop()


def active_and_standby(members: list[Member]) -> tuple[Member, Member]:
    a, b = members
    return (a, b) if a.role() == "active" else (b, a)


def run_fault(tag: str, fault: str) -> dict:
    """Events flow, the active bridge suffers ``fault``, events keep flowing; returns the
    figures (asserting nothing is lost)."""
    with pair(tag) as (standin, members, counter):
        active, standby = active_and_standby(members)
        with Flow(standin) as flow:
            time.sleep(2.0)
            faulted_at = time.monotonic()
            if fault == "sigkill":
                active.proc.kill(signal.SIGKILL)
            elif fault == "sigstop":
                active.proc.kill(signal.SIGSTOP)
            elif fault == "amqp_cut":
                active.proxy.cut()
            support.wait_until(lambda: standby.role() == "active", timeout=30,
                               what="the standby to take over")
            time.sleep(2.0)
            if fault == "sigstop":
                active.proc.kill(signal.SIGCONT)   # it wakes up past its lease: stands by
            elif fault == "amqp_cut":
                active.proxy.mend()               # what it held comes out: duplicates
            time.sleep(3.0)
        missing = counter.wait_for(set(flow.calls), timeout=60)
        counter_settle = time.monotonic() + 3
        while time.monotonic() < counter_settle:
            time.sleep(0.2)
        after = [c for c in flow.calls if flow.sent_at[c] > faulted_at]
        first = min((counter.arrivals[c] for c in after if c in counter.arrivals),
                    default=float("nan"))
        new = metrics(standby.port)
        figures = faultkit.figures(
            f"takeover_{fault}", lease_ms=LEASE_MS, takeover_s=round(first - faulted_at, 3),
            events_sent=len(flow.calls), events_received=len(flow.calls) - len(missing),
            events_lost=len(missing),
            duplicates=sum(n - 1 for n in counter.seen.values() if n > 1),
            replayed=new.get("whistle_bridge_events_replayed", -1),
            takeovers_of_new_active=new.get("whistle_bridge_takeovers", -1))
        assert not missing, f"{len(missing)} events lost: {sorted(missing)[:5]}"
        assert figures["takeover_s"] <= TAKEOVER_BOUND_S, figures
        # duplicates: at most what a few renew periods and the unconfirmed messages hold
        assert figures["duplicates"] <= 400, figures
        assert figures["takeovers_of_new_active"] >= 1
        if fault != "sigkill":
            # the old active lives on, and only stands by
            support.wait_until(lambda: active.role() == "standby", timeout=30,
                               what="the old active to stand by")
            assert "stands by for FreeSWITCH" in active.proc.output()
        assert "active for FreeSWITCH" in standby.proc.output()
        return figures


def test_active_bridge_sigkilled() -> None:
    run_fault("kill", "sigkill")


def test_active_bridge_hung_sigstop() -> None:
    run_fault("stop", "sigstop")


def test_active_bridge_cut_from_rabbitmq() -> None:
    run_fault("cut", "amqp_cut")


def test_standby_lost_changes_nothing() -> None:
    with pair("standby") as (standin, members, counter):
        active, standby = active_and_standby(members)
        with Flow(standin) as flow:
            time.sleep(1.0)
            standby.proc.kill(signal.SIGKILL)
            time.sleep(2.0)
        missing = counter.wait_for(set(flow.calls), timeout=30)
        assert not missing
        assert sum(n - 1 for n in counter.seen.values() if n > 1) == 0
        assert active.role() == "active"
        assert metrics(active.port)["whistle_bridge_takeovers"] == 1


def test_status_names_the_active_bridge_and_the_standby() -> None:
    with pair("status") as (standin, members, counter):
        active, standby = active_and_standby(members)
        seen = support.wait_until(
            lambda: leases.bridges_of_nodes(os.environ["WHISTLE_REDIS_URL"]).get(
                standin.hostname, {}).get("bridges", {}).__len__() == 2 and
            leases.bridges_of_nodes(os.environ["WHISTLE_REDIS_URL"])[standin.hostname],
            timeout=10, what="both bridges in Redis")
        roles = sorted(seen["bridges"].values())
        assert roles == ["active", "standby"], seen
        assert seen["active"] in seen["bridges"] and seen["bridges"][seen["active"]] == "active"
        role = f'whistle_bridge_node_active{{node="127.0.0.1:{standin.port}"}}'
        assert metrics(active.port)[role] == 1
        assert metrics(standby.port)[role] == 0


def test_a_standby_refuses_dialplan_lookups_so_freeswitch_asks_the_active(
        fixtures_dir: Path) -> None:
    from tests.bridgekit import dialplan_body

    with pair("dialplan") as (standin, members, counter):
        active, standby = active_and_standby(members)
        body = dialplan_body(fixtures_dir, "ha.example.com", "2000",
                             {"hostname": standin.hostname,
                              "FreeSWITCH-Hostname": standin.hostname})
        refused = requests.post(f"http://127.0.0.1:{standby.port}/fs/dialplan", data=body,
                                timeout=10)
        answered = requests.post(f"http://127.0.0.1:{active.port}/fs/dialplan", data=body,
                                 timeout=10)
        assert refused.status_code == 503, refused.text
        assert answered.status_code == 200 and b"<document" in answered.content


def test_whistle_up_runs_redundant_bridges_on_consecutive_ports() -> None:
    settings = load({"WHISTLE_HTTP_LISTEN": "127.0.0.1:8090",
                     "WHISTLE_FS_NODES": "127.0.0.1:8021:pw", "WHISTLE_SPOOL_DIR": "/var/spool/w"})
    specs = supervisor.platform_specs(settings, bridges=2, media=False, beat=False,
                                      flower=False, api=False, only=[])
    assert [s.name for s in specs] == ["bridge", "bridge-2"]
    assert [s.env["WHISTLE_HTTP_LISTEN"] for s in specs] == ["127.0.0.1:8090",
                                                              "127.0.0.1:8091"]
    assert {s.env["WHISTLE_BRIDGE_LEASE_MS"] for s in specs} == {"2000"}
    assert specs[1].env["WHISTLE_SPOOL_DIR"] == "/var/spool/w/bridge-2"
    single = supervisor.platform_specs(settings, media=False, beat=False, flower=False,
                                       api=False, only=[])
    assert [s.name for s in single] == ["bridge"] and not single[0].env


def _event(core: str, seq: int) -> Event:
    return Event(None, headers={"Event-Name": "CHANNEL_ANSWER", "Core-UUID": core,
                                "Event-Sequence": str(seq)})


def test_window_meets_the_checkpoint_and_tells_a_freeswitch_restart_apart() -> None:
    window = Window(5)
    for seq in (10, 11, 13, 14):
        window.add(_event("old", seq))
    after, how = window.after("old", 11)
    assert how == "exact" and [s.seq for s in after] == [13, 14]
    # FreeSWITCH restarted: its sequence starts again under another Core-UUID
    for seq in (1, 2):
        window.add(_event("new", seq))
    after, how = window.after("old", 14)
    assert how == "exact" and [(s.core, s.seq) for s in after] == [("new", 1), ("new", 2)]
    # the checkpoint's process is gone from the window altogether: all of it is new
    window.add(_event("new", 3))
    window.add(_event("new", 4))
    window.add(_event("new", 5))
    after, how = window.after("old", 14)
    assert how == "restart" and [s.seq for s in after] == [1, 2, 3, 4, 5]
    # no checkpoint yet (no bridge was ever active): everything it has
    assert window.after("", None)[1] == "none"
    # the window begins after the checkpoint: said (events between may be missing)
    short = Window(3)
    for seq in (50, 51, 52):
        short.add(_event("old", seq))
    assert short.after("old", 20) == (list(short.items), "short")
    # an event without a sequence is not kept (nothing to order it by)
    short.add(Event(None, headers={"Event-Name": "HEARTBEAT"}))
    assert len(short) == 3
