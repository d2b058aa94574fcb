"""Faults against the real services: what Whistle does when a part of it dies or goes away.

Each test breaks one thing while traffic flows and counts what was sent against what
arrived (the figures are printed and kept in ``test-output/faults/``; RELIABILITY.md quotes
them). Every test runs in a RabbitMQ vhost of its own, with workers, a bridge and ESL
stand-ins of its own; the services it stops (pouchdb-server, redis-server) are private
copies on free ports. The RabbitMQ test is the exception: ``rabbitmqctl stop_app`` stops the
broker of the whole machine for a few seconds (other sessions' tests see it too).
"""

from __future__ import annotations

import contextlib
import random
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import faultkit, support
from tests.bridgekit import metrics, start_bridge
from tests.esl_standin import EslStandIn
from whistle_tasks.core.config import settings

BUDGET_S = 2.5  # the bridge's default answer budget (WHISTLE_ANSWER_BUDGET_MS=2500)


@pytest.fixture()
def vhost() -> Iterator[str]:
    with faultkit.private_vhost() as url:
        yield url


def _task_ids(log: str, what: str) -> set[str]:
    return set(re.findall(r"Task registrar\.\w+\[(\w+)\] " + what, log))


# --- 1. a registrar worker killed (SIGKILL) during an authentication storm ----------------

def test_registrar_worker_killed_mid_storm(fixtures_dir: Path, vhost: str) -> None:
    realm = f"{support.unique('kill')}.example.com"
    users = faultkit.provision_here(realm, 200)
    # DEBUG: the workers log each task received/succeeded (the tasks in flight at the kill)
    env = {"WHISTLE_AMQP_URL": vhost, "WHISTLE_LOG_LEVEL": "DEBUG"}
    standin = EslStandIn(hostname="fs-fault-kill").start()
    workers = [support.start_worker("registrar", name=f"fault-kill-{n}", env=env,
                                    pool="threads", concurrency=4) for n in ("a", "b")]
    bridge, port = start_bridge(standin, name="bridge-fault-kill", WHISTLE_AMQP_URL=vhost,
                                WHISTLE_AUTH_CACHE_TTL="0")
    try:
        standin.wait_for_connections(1, timeout=10)
        victim, survivor = workers
        requests_ = users * 2
        random.Random(1).shuffle(requests_)
        killed_at: list[float] = []
        kill_after = len(requests_) // 4

        def progress(done: int) -> None:
            if done == kill_after:
                victim.kill(signal.SIGKILL)
                killed_at.append(time.monotonic())

        # registrations flow during the storm, half before the kill and half after
        registered: dict[str, str] = {}

        def register_all() -> None:
            for user in users[:100]:
                registered[user] = faultkit.send_register(standin, realm, user, "198.51.100.7")
                time.sleep(0.015)

        registrar = threading.Thread(target=register_all)
        started = time.monotonic()
        registrar.start()
        results = faultkit.storm(port, fixtures_dir, realm, requests_, on_progress=progress)
        registrar.join()
        storm_s = time.monotonic() - started

        wrong = [(r.user, r.status, r.got) for r in results if not r.ok]
        victim.proc.wait(10)
        victim_log = victim.output()
        in_flight = _task_ids(victim_log, "received") - _task_ids(victim_log, "succeeded")

        def stored() -> list[dict]:
            return faultkit.registration_docs(settings.couch_url, settings.couch_prefix, realm)

        support.wait_until(lambda: len(stored()) >= len(registered), timeout=30,
                           what="every registration stored")
        time.sleep(1.0)  # anything late (a duplicate) would show now
        docs = stored()
        contacts = sorted(d["Contact"] for d in docs)
        figures = faultkit.figures(
            "worker_sigkill",
            auth_requests=len(results), auth_answered_right=len(results) - len(wrong),
            auth_wrong_or_unanswered=len(wrong), storm_seconds=round(storm_s, 2),
            killed_after_answers=kill_after, victim_tasks_in_flight_at_kill=len(in_flight),
            reg_sent=len(registered), reg_stored=len(docs),
            reg_lost=len(set(registered.values()) - set(contacts)),
            reg_docs_rewritten=sum(1 for d in docs if not d["_rev"].startswith("1-")),
            **faultkit.latency_figures(results))
        assert killed_at, "the worker was not killed"
        assert not wrong, wrong[:5]
        assert figures["max_ms"] < BUDGET_S * 1000
        assert contacts == sorted(set(registered.values())), "a registration lost or doubled"
        assert survivor.proc.poll() is None
        assert "Traceback" not in survivor.output()
    finally:
        bridge.stop()
        for worker in workers:
            worker.stop()
        standin.stop()


# --- 2. RabbitMQ restarted while call events and registrations flow -----------------------

class _Traffic:
    """The stand-in's traffic: a call event every ``period`` seconds (one new call each) and
    a sofia::register for a new user every fifth event, until stopped."""

    def __init__(self, standin: EslStandIn, realm: str, period: float = 0.02) -> None:
        self.standin, self.realm, self.period = standin, realm, period
        self.calls: list[str] = []
        self.contacts: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fault-traffic", daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            call = f"fault-{support.unique('c')}"
            faultkit.send_call_event(self.standin, call)
            self.calls.append(call)
            if n % 5 == 0:
                user = faultkit.user_name(len(self.contacts))
                self.contacts.append(faultkit.send_register(self.standin, self.realm, user,
                                                            "198.51.100.8"))
            n += 1
            time.sleep(self.period)

    def __enter__(self) -> _Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(5)
        self.standin.flush()


def test_rabbitmq_restart_during_event_flow(fixtures_dir: Path, vhost: str) -> None:
    realm = f"{support.unique('rmq')}.example.com"
    (user,) = faultkit.provision_here(realm, 1)
    env = {"WHISTLE_AMQP_URL": vhost}
    standin = EslStandIn(hostname="fs-fault-rmq").start()
    worker = support.start_worker("registrar", name="fault-rmq", env=env, pool="threads",
                                  concurrency=4)
    bridge, port = start_bridge(standin, name="bridge-fault-rmq", WHISTLE_AMQP_URL=vhost,
                                WHISTLE_AUTH_CACHE_TTL="0")
    counter = faultkit.EventCounter(vhost, key="call.CHANNEL_ANSWER.#")
    try:
        standin.wait_for_connections(1, timeout=10)
        assert faultkit.authenticate(port, fixtures_dir, realm, user).ok
        with _Traffic(standin, realm) as traffic:
            time.sleep(2.0)
            # a backlog in the broker when it stops: the registrar is frozen and the event
            # counter reads nothing for a second, so messages sit in their durable queues
            worker.kill(signal.SIGSTOP)
            counter.paused.set()
            time.sleep(1.0)
            sent_before = len(traffic.calls)
            try:
                timings = faultkit.rabbit_restart(outage=3.0)
            finally:
                worker.kill(signal.SIGCONT)
                counter.paused.clear()
            sent_during = len(traffic.calls) - sent_before
            time.sleep(2.0)
        recovered_at = time.monotonic()
        missing = counter.wait_for(set(traffic.calls), timeout=30)
        events_s = time.monotonic() - recovered_at

        def stored() -> list[dict]:
            return faultkit.registration_docs(settings.couch_url, settings.couch_prefix, realm)

        with contextlib.suppress(AssertionError):
            support.wait_until(lambda: len(stored()) >= len(traffic.contacts), timeout=30,
                               what="every registration stored")
        regs_s = time.monotonic() - recovered_at
        contacts = sorted(d["Contact"] for d in stored())
        # the bridge answers lookups again: its inbox (replies) reconnected too
        auth_ok = support.wait_until(
            lambda: faultkit.authenticate(port, fixtures_dir, realm, user).ok, timeout=30,
            interval=0.5, what="authentication after the restart")
        values = metrics(port)
        figures = faultkit.figures(
            "rabbitmq_restart", **timings,
            events_sent=len(traffic.calls), events_sent_while_down=sent_during,
            events_received=sum(1 for c in traffic.calls if counter.seen.get(c)),
            events_lost=len(missing),
            events_duplicated=sum(n - 1 for c, n in counter.seen.items() if n > 1),
            seconds_to_deliver_after_restart=round(events_s, 2),
            seconds_to_store_after_restart=round(regs_s, 2),
            reg_sent=len(traffic.contacts), reg_stored=len(contacts),
            reg_lost=len(set(traffic.contacts) - set(contacts)),
            bridge_dropped=values.get("whistle_bridge_dropped_messages", -1),
            counter_reconnects=counter.reconnects)
        assert not missing, f"{len(missing)} call events lost"
        assert contacts == sorted(set(traffic.contacts)), "a registration lost or doubled"
        assert auth_ok and figures["bridge_dropped"] == 0
        assert values["whistle_bridge_amqp_connected"] == 1
        for proc in (bridge, worker):
            assert proc.proc.poll() is None, f"{proc.name} died"
        assert "lost RabbitMQ" in bridge.output()
    finally:
        faultkit.ensure_rabbit_running()
        counter.close()
        bridge.stop()
        worker.stop()
        standin.stop()



def test_broker_closes_connections_while_registrar_holds_tasks(fixtures_dir: Path,
                                                               vhost: str) -> None:
    """The same reconnect without stopping the broker (only this test's vhost): RabbitMQ
    closes every connection while the registrar holds unacked tasks. The worker must carry
    on at once after one reconnect (it once stalled, or broke its stream and reconnected
    again: Celery's prefetch reduction, now off in whistle_tasks.celery)."""
    realm = f"{support.unique('close')}.example.com"
    (user,) = faultkit.provision_here(realm, 1)
    env = {"WHISTLE_AMQP_URL": vhost}
    standin = EslStandIn(hostname="fs-fault-close").start()
    worker = support.start_worker("registrar", name="fault-close", env=env, pool="threads",
                                  concurrency=4)
    bridge, port = start_bridge(standin, name="bridge-fault-close", WHISTLE_AMQP_URL=vhost,
                                WHISTLE_AUTH_CACHE_TTL="0")
    try:
        standin.wait_for_connections(1, timeout=10)
        worker.kill(signal.SIGSTOP)
        try:
            contacts = [faultkit.send_register(standin, realm, faultkit.user_name(i),
                                               "198.51.100.11") for i in range(30)]
            time.sleep(1.0)  # the frozen worker's prefetch window fills up
            closed = faultkit.close_connections(vhost)
        finally:
            worker.kill(signal.SIGCONT)
        resumed_at = time.monotonic()
        contacts += [faultkit.send_register(standin, realm, faultkit.user_name(i),
                                            "198.51.100.11") for i in range(30, 60)]

        def stored() -> list[dict]:
            return faultkit.registration_docs(settings.couch_url, settings.couch_prefix, realm)

        with contextlib.suppress(AssertionError):
            support.wait_until(lambda: len(stored()) >= len(contacts), timeout=20,
                               what="every registration stored")
        stored_s = time.monotonic() - resumed_at
        auth = support.wait_until(
            lambda: faultkit.authenticate(port, fixtures_dir, realm, user).ok, timeout=10,
            interval=0.5, what="authentication after the reconnect")
        docs = stored()
        log = worker.output()
        figures = faultkit.figures(
            "connections_closed", connections_closed=closed, reg_sent=len(contacts),
            reg_stored=len(docs), reg_lost=len(set(contacts) - {d["Contact"] for d in docs}),
            seconds_to_store_after_resume=round(stored_s, 2),
            worker_reconnects=log.count("Connection to broker lost"),
            worker_stream_errors=log.count("UnexpectedFrame"))
        assert sorted(d["Contact"] for d in docs) == sorted(set(contacts))
        assert figures["seconds_to_store_after_resume"] < 10
        assert auth
        assert figures["worker_reconnects"] == 1 and figures["worker_stream_errors"] == 0
    finally:
        bridge.stop()
        worker.stop()
        standin.stop()

# --- 3. CouchDB stopped ------------------------------------------------------------------

def _parallel(*jobs: object) -> list:
    """Run the callables in ``jobs`` at the same time; their results in order."""
    results: list = [None] * len(jobs)

    def run(i: int, job: object) -> None:
        results[i] = job()  # type: ignore[operator]

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def test_couchdb_stopped(fixtures_dir: Path, vhost: str) -> None:
    pouch = faultkit.PrivatePouch()
    pouch.start()
    realm = f"{support.unique('couch')}.example.com"
    env = {"WHISTLE_AMQP_URL": vhost, "WHISTLE_COUCH_URL": pouch.url}
    faultkit.provision_elsewhere(env, realm, 40)
    users = [faultkit.user_name(i) for i in range(40)]
    standin = EslStandIn(hostname="fs-fault-couch").start()
    worker = support.start_worker("registrar", name="fault-couch", env=env, pool="threads",
                                  concurrency=8)
    bridge, port = start_bridge(standin, name="bridge-fault-couch", WHISTLE_AUTH_CACHE_TTL="0",
                                **env)
    try:
        standin.wait_for_connections(1, timeout=10)
        warm = faultkit.storm(port, fixtures_dir, realm, users)
        assert all(r.ok for r in warm), [r.got for r in warm if not r.ok][:3]

        pouch.stop()
        down_at = time.monotonic()
        contacts = [faultkit.send_register(standin, realm, user, "198.51.100.9")
                    for user in users[:20]]
        unknown_users = [f"nobody{i}" for i in range(10)]
        known, unknown = _parallel(
            lambda: faultkit.storm(port, fixtures_dir, realm, users * 2, parallel=8),
            lambda: faultkit.storm(port, fixtures_dir, realm, unknown_users, parallel=2,
                                   expect_known=False))
        time.sleep(max(0.0, 6.0 - (time.monotonic() - down_at)))
        restart_s = pouch.start()
        back_at = time.monotonic()

        def stored() -> list[dict]:
            return faultkit.registration_docs(pouch.url, settings.couch_prefix, realm)

        with contextlib.suppress(AssertionError):
            support.wait_until(lambda: len(stored()) >= len(contacts), timeout=40,
                               interval=0.5, what="registrations written after CouchDB is back")
        stored_s = time.monotonic() - back_at
        docs = stored()
        worker_log = worker.output()
        figures = faultkit.figures(
            "couchdb_stopped", outage_s=round(back_at - down_at, 1),
            pouch_restart_s=round(restart_s, 1),
            known_auth_requests=len(known), known_auth_right=sum(r.ok for r in known),
            **{f"known_{k}": v for k, v in faultkit.latency_figures(known).items()},
            unknown_auth_requests=len(unknown),
            unknown_answered_not_found=sum(r.ok for r in unknown),
            **{f"unknown_{k}": v for k, v in faultkit.latency_figures(unknown).items()},
            reg_sent=len(contacts),
            reg_stored=len(docs), reg_lost=len(set(contacts) - {d["Contact"] for d in docs}),
            seconds_to_store_after_back=round(stored_s, 1),
            reg_retries_logged=worker_log.count("waits for CouchDB"))
        assert figures["known_auth_right"] == len(known)
        assert figures["known_max_ms"] < BUDGET_S * 1000
        assert figures["unknown_answered_not_found"] == len(unknown)
        assert figures["unknown_max_ms"] < BUDGET_S * 1000
        assert sorted(d["Contact"] for d in docs) == sorted(set(contacts))
        assert figures["reg_retries_logged"] >= 1
        assert "is down (ConnectionError)" in worker_log and "is back after" in worker_log
        assert worker.proc.poll() is None and "Traceback" not in worker_log
    finally:
        bridge.stop()
        worker.stop()
        standin.stop()
        pouch.close()


# --- 4. Redis stopped --------------------------------------------------------------------

def test_redis_stopped(fixtures_dir: Path, vhost: str) -> None:
    cache = faultkit.PrivateRedis()
    cache.start()
    realm = f"{support.unique('redis')}.example.com"
    users = faultkit.provision_here(realm, 30)
    env = {"WHISTLE_AMQP_URL": vhost, "WHISTLE_REDIS_URL": cache.url}
    standin = EslStandIn(hostname="fs-fault-redis").start()
    worker = support.start_worker("registrar", name="fault-redis", env=env, pool="threads",
                                  concurrency=8)
    bridge, port = start_bridge(standin, name="bridge-fault-redis", WHISTLE_AUTH_CACHE_TTL="0",
                                **env)
    try:
        standin.wait_for_connections(1, timeout=10)
        warm = faultkit.storm(port, fixtures_dir, realm, users)
        assert all(r.ok for r in warm)
        shared_before = len(cache.keys(f"whistle:creds:{realm}/*"))

        cache.stop()
        down_at = time.monotonic()
        (added_while_down,) = faultkit.provision_here(realm, 1, start=30)
        contacts = [faultkit.send_register(standin, realm, user, "198.51.100.10")
                    for user in users[:10]]
        during = faultkit.storm(port, fixtures_dir, realm, users * 2 + [added_while_down])
        time.sleep(max(0.0, 3.0 - (time.monotonic() - down_at)))
        cache.start()
        back_at = time.monotonic()
        time.sleep(1.5)  # the worker tries Redis again a second after its last failure
        (added_after,) = faultkit.provision_here(realm, 1, start=31)
        after = faultkit.authenticate(port, fixtures_dir, realm, added_after)
        shared_after = support.wait_until(
            lambda: cache.keys(f"whistle:creds:{realm}/{added_after}"), timeout=10,
            what="the new credentials in the restarted Redis")

        def stored() -> list[dict]:
            return faultkit.registration_docs(settings.couch_url, settings.couch_prefix, realm)

        support.wait_until(lambda: len(stored()) >= len(contacts), timeout=20,
                           what="registrations stored")
        docs = stored()
        worker_log = worker.output()
        figures = faultkit.figures(
            "redis_stopped", outage_s=round(back_at - down_at, 1),
            shared_keys_before=shared_before,
            auth_requests_while_down=len(during), auth_right_while_down=sum(r.ok for r in during),
            **{f"while_down_{k}": v for k, v in faultkit.latency_figures(during).items()},
            auth_right_after=int(after.ok), shared_keys_after_restart=len(shared_after),
            reg_sent=len(contacts), reg_stored=len(docs),
            reg_lost=len(set(contacts) - {d["Contact"] for d in docs}),
            outage_warnings_logged=worker_log.count("caching in this process only"))
        assert shared_before >= len(users)
        assert figures["auth_right_while_down"] == len(during)
        assert figures["while_down_max_ms"] < BUDGET_S * 1000
        assert after.ok
        assert sorted(d["Contact"] for d in docs) == sorted(set(contacts))
        assert figures["outage_warnings_logged"] == 1  # one warning for the outage, not one a call
        assert "is back after" in worker_log
        assert worker.proc.poll() is None and "Traceback" not in worker_log
    finally:
        bridge.stop()
        worker.stop()
        standin.stop()
        cache.close()


# --- 5. a FreeSWITCH node drops its event socket, refuses, or goes silent ----------------

class _Pump:
    """Heartbeats to every stand-in each ``period`` s (as FreeSWITCH's 20 s, sped up) and a
    call event from ``source`` every 50 ms, each a new call, send times kept."""

    def __init__(self, source: EslStandIn, nodes: list[EslStandIn], period: float = 1.0) -> None:
        self.source, self.nodes, self.period = source, nodes, period
        self.sent: dict[str, float] = {}
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._beat, daemon=True),
                        threading.Thread(target=self._events, daemon=True)]

    def _beat(self) -> None:
        while not self._stop.wait(self.period):
            for node in self.nodes:
                node.heartbeat()

    def _events(self) -> None:
        while not self._stop.wait(0.05):
            call = f"fault-{support.unique('n')}"
            self.sent[call] = time.monotonic()
            faultkit.send_call_event(self.source, call)

    def __enter__(self) -> _Pump:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self.threads:
            thread.join(5)


def _node_metric(port: int, name: str, node: EslStandIn) -> float:
    return metrics(port).get(f'whistle_bridge_esl_node_{name}{{node="127.0.0.1:{node.port}"}}',
                             -1.0)


def test_freeswitch_node_drops_refuses_and_goes_silent(vhost: str) -> None:
    healthy = EslStandIn(hostname="fs-healthy").start()
    faulty = EslStandIn(hostname="fs-faulty").start()
    nodes = f"127.0.0.1:{healthy.port}:ClueCon,127.0.0.1:{faulty.port}:ClueCon"
    bridge, port = start_bridge(healthy, name="bridge-fault-esl", WHISTLE_AMQP_URL=vhost,
                                WHISTLE_FS_NODES=nodes, WHISTLE_ESL_HEARTBEAT_TIMEOUT="3")
    counter = faultkit.EventCounter(vhost, key="call.CHANNEL_ANSWER.#")
    phases: dict[str, float] = {}
    try:
        healthy.wait_for_connections(1, timeout=10)
        faulty.wait_for_connections(1, timeout=10)
        with _Pump(healthy, [healthy, faulty]) as pump:
            time.sleep(1.0)
            # 1. dropped (FreeSWITCH died, came back at once): reconnected within the back-off
            accepted = faulty.accepted
            phases["dropped_at"] = time.monotonic()
            faulty.drop()
            faulty.wait_for(lambda: faulty.subscribed, timeout=10, what="resubscribed")
            reconnect_s = time.monotonic() - phases["dropped_at"]
            assert faulty.accepted == accepted + 1
            # 2. refusing (ACL rejection) for 5 s: attempts back off instead of hammering
            faulty.rude = True
            accepted = faulty.accepted
            faulty.drop()
            time.sleep(5.0)
            refused_attempts = faulty.accepted - accepted
            down_while_refused = _node_metric(port, "up", faulty)
            faulty.rude = False
            # back: subscribed on the switch's side AND connected on the bridge's (the stand-in
            # sees the subscription a moment before the bridge's state changes)
            faulty.wait_for(lambda: faulty.subscribed and _node_metric(port, "up", faulty) == 1,
                            timeout=30, what="back after refusal")
            # 3. silent (hung: not a byte, not a heartbeat): presumed dead after 3 s
            silent_at = time.monotonic()
            faulty.silent = True
            support.wait_until(lambda: _node_metric(port, "up", faulty) == 0, timeout=10,
                               what="the silent node marked down")
            silent_detected_s = time.monotonic() - silent_at
            time.sleep(2.0)
            faulty.silent = False
            faulty.wait_for(lambda: faulty.subscribed and _node_metric(port, "up", faulty) == 1,
                            timeout=30, what="back after silence")
            time.sleep(0.5)
        missing = counter.wait_for(set(pump.sent), timeout=15)
        latencies = sorted(counter.arrivals[c] - t for c, t in pump.sent.items()
                           if c in counter.arrivals)
        values = metrics(port)
        figures = faultkit.figures(
            "freeswitch_node_faults",
            faulty_reconnect_after_drop_s=round(reconnect_s, 2),
            faulty_attempts_in_5s_of_refusal=refused_attempts,
            faulty_silence_detected_s=round(silent_detected_s, 2),
            faulty_reconnects_metric=values.get(
                f'whistle_bridge_esl_node_reconnects{{node="127.0.0.1:{faulty.port}"}}'),
            healthy_reconnects_metric=values.get(
                f'whistle_bridge_esl_node_reconnects{{node="127.0.0.1:{healthy.port}"}}'),
            healthy_connections=healthy.accepted,
            healthy_events_sent=len(pump.sent), healthy_events_received=len(latencies),
            healthy_events_lost=len(missing),
            healthy_event_p50_ms=round(latencies[len(latencies) // 2] * 1000, 1),
            healthy_event_max_ms=round(latencies[-1] * 1000, 1))
        assert not missing
        assert figures["healthy_event_max_ms"] < 500, "the healthy node's events were delayed"
        assert healthy.accepted == 1 and figures["healthy_reconnects_metric"] == 0
        assert 2 <= refused_attempts <= 10, "no back-off (or no retry) while refused"
        assert down_while_refused == 0
        assert 2.5 <= silent_detected_s <= 6.0
        assert figures["faulty_reconnects_metric"] >= 3
        assert "no frame for 3s" in bridge.output()
    finally:
        counter.close()
        bridge.stop()
        healthy.stop()
        faulty.stop()
