"""An acknowledged subscription of the gevent inbox (``Subscription(ack=True)``: a call's
control queue): a message is acknowledged once its handler returned, given back to the
queue when the handler raised, and one held unacknowledged by a process that dies is
delivered to the next consumer of the queue. Real RabbitMQ; the inbox runs in a
monkey-patched child process, as in the bridge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from kombu import Connection

from tests import support
from whistle_tasks.core import amqp

CHILD = r"""
from gevent import monkey
monkey.patch_all()
import json, sys, gevent
from whistle_tasks.core.inbox import Inbox, Subscription
from whistle_tasks.core import amqp

queue, mode = sys.argv[1], sys.argv[2]
inbox = Inbox(amqp.settings.amqp_url, name="probe")
seen = []

def handler(msg):
    seen.append(msg["n"])
    if mode == "fail-first" and len(seen) == 1:
        raise RuntimeError("not now")
    if mode == "hold":
        print("HELD", flush=True)
        gevent.sleep(3600)          # killed while it holds the message (never returns)

inbox.subscribe(Subscription(queue=queue, bindings=[(amqp.CALLCTL.name, queue)],
                             handler=handler, exclusive=False, auto_delete=False, ack=True,
                             arguments={"x-expires": 60000}))
inbox.start()
inbox.ready.wait(10)
print("READY", flush=True)
for _ in range(100):
    gevent.sleep(0.1)
    if len(seen) >= 2 or (mode == "once" and seen):
        break
print(json.dumps({"seen": seen, "stats": inbox.stats}), flush=True)
inbox.stop()
"""


def _publish(queue: str, n: int) -> None:
    amqp.Publisher(os.environ["WHISTLE_AMQP_URL"]).publish_api({"n": n}, amqp.CALLCTL, queue)


def _child(queue: str, mode: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, queue, mode], cwd=support.ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "READY", line
    return proc


def _result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate(timeout=30)
    return json.loads(out.strip().splitlines()[-1])


def _delete(queue: str) -> None:
    with Connection(os.environ["WHISTLE_AMQP_URL"]) as conn:
        conn.default_channel.queue_delete(queue)


def test_a_failed_handler_gives_the_message_back() -> None:
    queue = f"callctl.test-{uuid.uuid4().hex}"
    proc = _child(queue, "fail-first")
    try:
        _publish(queue, 7)
        got = _result(proc)
    finally:
        proc.kill()
        _delete(queue)
    assert got["seen"] == [7, 7], got          # redelivered after the failure
    assert got["stats"]["requeued"] == 1


def test_a_message_held_by_a_dead_process_goes_to_the_next_one() -> None:
    queue = f"callctl.test-{uuid.uuid4().hex}"
    holder = _child(queue, "hold")
    try:
        _publish(queue, 1)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "HELD"
        holder.kill()                          # SIGKILL while the message is unacked
        holder.wait(10)
        # the queue outlived its consumer (not exclusive, not auto-deleted)
        with Connection(os.environ["WHISTLE_AMQP_URL"]) as conn:
            support.wait_until(lambda: conn.default_channel.queue_declare(
                queue, passive=True)[1] == 1, timeout=20, what="the message back in the queue")
        second = _child(queue, "once")
        got = _result(second)
    finally:
        holder.kill()
        _delete(queue)
    assert got["seen"] == [1], got
