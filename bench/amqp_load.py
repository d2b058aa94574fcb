"""A lean AMQP request/reply load generator (raw py-amqp, one thread, no kombu overhead).

Requests are Celery task messages built by :func:`whistle_tasks.core.amqp.encode_request`; the
answers come back on the generator's own ``Server-ID`` queue (``targeted``). Two shapes:

* closed loop: ``inflight`` requests outstanding at all times → throughput;
* open loop: requests sent on a fixed schedule whatever the answers do → latency measured
  from the *scheduled* send time, so queueing and stalls are not hidden.

Every request is accounted for (:class:`bench.common.Result`): each answer is checked by
``check(request, answer)`` against the exact answer expected for that request (right or
wrong); a request still unanswered ``budget`` seconds after it was due is a timeout (its
latency sample is the budget, so p99 sees it).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import amqp as pyamqp

from bench.common import Result, amqp_connect
from whistle_tasks.core.amqp import encode_request

MakeRequest = Callable[[int], tuple[str, dict[str, Any], str]]  # i -> (task, msg, key)
Check = Callable[[dict[str, Any], dict[str, Any]], bool]  # (request, answer) -> right?


class AmqpLoad:
    def __init__(self, url: str, make_request: MakeRequest, exchange: str = "callmgr",
                 check: Check | None = None, budget: float = 5.0) -> None:
        self.conn = amqp_connect(url)
        self.channel = self.conn.channel()
        self.server_id = f"bench-{uuid.uuid4().hex}"
        self.channel.queue_declare(self.server_id, exclusive=True, auto_delete=True)
        self.channel.queue_bind(self.server_id, "targeted", self.server_id)
        self.channel.basic_consume(self.server_id, callback=self._on_reply, no_ack=True)
        self.exchange = exchange
        self.make_request = make_request
        #: Msg-ID -> (scheduled send time, the request)
        self.pending: dict[str, tuple[float, dict[str, Any]]] = {}
        self.result: Result | None = None
        self.counter = 0
        self.budget = budget
        self.check: Check = check or (lambda request, answer: True)
        self.late = 0  # answers that came after their request was counted a timeout

    def _on_reply(self, message: pyamqp.Message) -> None:
        answer = json.loads(message.body)
        entry = self.pending.pop(answer.get("Msg-ID", ""), None)
        if entry is None or self.result is None:
            self.late += 1
            return
        started, request = entry
        if self.check(request, answer):
            self.result.right += 1
        else:
            self.result.wrong += 1
        self.result.latencies_ms.append((time.perf_counter() - started) * 1000)

    def _send(self, scheduled: float) -> None:
        self.counter += 1
        task, msg, key = self.make_request(self.counter)
        msg_id = f"{self.server_id}-{self.counter}"
        msg = {**msg, "Msg-ID": msg_id, "Server-ID": self.server_id}
        body, headers, props = encode_request(task, msg)
        self.pending[msg_id] = (scheduled, msg)
        assert self.result is not None
        self.result.sent += 1
        try:
            self.channel.basic_publish(
                pyamqp.Message(body, content_type="application/json", content_encoding="utf-8",
                               application_headers=headers, **props),
                exchange=self.exchange, routing_key=key)
        except OSError:
            self.pending.pop(msg_id, None)
            self.result.errors += 1
            self.result.latencies_ms.append((time.perf_counter() - scheduled) * 1000)

    def _drain(self, timeout: float) -> None:
        try:
            self.conn.drain_events(timeout=max(timeout, 0.0001))
        except TimeoutError:
            pass

    def _expire(self, now: float) -> None:
        """Requests older than the budget: timeouts (dicts keep the send order)."""
        assert self.result is not None
        while self.pending:
            msg_id, (started, _) = next(iter(self.pending.items()))
            if now - started < self.budget:
                return
            del self.pending[msg_id]
            self.result.timeouts += 1
            self.result.latencies_ms.append(self.budget * 1000)

    def _finish(self) -> None:
        """Wait for the answers still due (up to the budget); the rest are timeouts."""
        while self.pending:
            self._drain(0.05)
            self._expire(time.perf_counter())

    def closed(self, name: str, inflight: int, seconds: float) -> Result:
        """Throughput: ``inflight`` outstanding; the clock runs until the last answer."""
        self.result = result = Result(name)
        start = time.perf_counter()
        end = start + seconds
        for _ in range(inflight):
            self._send(time.perf_counter())
        while time.perf_counter() < end:
            self._drain(0.01)
            self._expire(time.perf_counter())
            while len(self.pending) < inflight:
                self._send(time.perf_counter())
        self._finish()
        result.seconds = time.perf_counter() - start
        self.result = None
        return result

    def open(self, name: str, rate: float, seconds: float) -> Result:
        self.result = result = Result(name)
        interval = 1.0 / rate
        start = time.perf_counter()
        next_at = start
        end = start + seconds
        while next_at < end:
            now = time.perf_counter()
            while next_at <= now and next_at < end:
                self._send(next_at)
                next_at += interval
            self._expire(now)
            self._drain(min(interval, next_at - time.perf_counter()))
        self._finish()
        result.seconds = seconds
        self.result = None
        return result

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001, S110 - closing a benchmark connection
            pass
