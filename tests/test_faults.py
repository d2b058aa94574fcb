"""Faults against the real services: what Whistle does when a part of it dies or goes away.

Each test breaks one thing while traffic flows and counts what was sent against what
arrived (the figures are printed and kept in ``test-output/faults/``; RELIABILITY.md quotes
them). Every test runs in a RabbitMQ vhost of its own, with workers, a bridge and ESL
stand-ins of its own; the services it stops (pouchdb-server, redis-server) are private
copies on free ports. The RabbitMQ test is the exception: ``rabbitmqctl stop_app`` stops the
broker of the whole machine for a few seconds (other sessions' tests see it too).
"""

from __future__ import annotations

import random
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import faultkit, support
from tests.bridgekit import start_bridge
from tests.esl_standin import EslStandIn
from whistle_tasks.config import settings

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
    env = {"WHISTLE_AMQP_URL": vhost}
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
