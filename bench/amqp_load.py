"""A lean AMQP request/reply load generator (raw py-amqp, one thread, no kombu overhead).

Requests are Celery task messages built by :func:`whistle_tasks.core.amqp.encode_request`; the
answers come back on the generator's own ``Server-ID`` queue (``targeted``). Two shapes:

* closed loop: ``inflight`` requests outstanding at all times → throughput;
* open loop: requests sent on a fixed schedule whatever the answers do → latency measured
  from the *scheduled* send time, so queueing and stalls are not hidden.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import amqp as pyamqp

from bench.common import Result
from whistle_tasks.core.amqp import encode_request

MakeRequest = Callable[[int], tuple[str, dict[str, Any], str]]  # i -> (task, msg, key)


class AmqpLoad:
    def __init__(self, url: str, make_request: MakeRequest, exchange: str = "callmgr") -> None:
        parts = urlsplit(url)
        vhost = unquote(parts.path[1:]) if parts.path not in ("", "/") else "/"
        self.conn = pyamqp.Connection(f"{parts.hostname}:{parts.port or 5672}",
                                      userid=parts.username or "guest",
                                      password=parts.password or "guest", virtual_host=vhost)
        self.conn.connect()
        self.channel = self.conn.channel()
        self.server_id = f"bench-{uuid.uuid4().hex}"
        self.channel.queue_declare(self.server_id, exclusive=True, auto_delete=True)
        self.channel.queue_bind(self.server_id, "targeted", self.server_id)
        self.channel.basic_consume(self.server_id, callback=self._on_reply, no_ack=True)
        self.exchange = exchange
        self.make_request = make_request
        self.sent_at: dict[str, float] = {}
        self.result: Result | None = None
        self.counter = 0
        self.check: Callable[[dict[str, Any]], bool] = lambda answer: True

    def _on_reply(self, message: pyamqp.Message) -> None:
        answer = json.loads(message.body)
        started = self.sent_at.pop(answer.get("Msg-ID", ""), None)
        if started is None or self.result is None:
            return
        self.result.answered += 1
        if not self.check(answer):
            self.result.errors += 1
        self.result.latencies_ms.append((time.perf_counter() - started) * 1000)

    def _send(self, scheduled: float) -> None:
        self.counter += 1
        task, msg, key = self.make_request(self.counter)
        msg_id = f"{self.server_id}-{self.counter}"
        msg = {**msg, "Msg-ID": msg_id, "Server-ID": self.server_id}
        body, headers, props = encode_request(task, msg)
        self.sent_at[msg_id] = scheduled
        self.channel.basic_publish(
            pyamqp.Message(body, content_type="application/json", content_encoding="utf-8",
                           application_headers=headers, **props),
            exchange=self.exchange, routing_key=key)
        if self.result is not None:
            self.result.sent += 1

    def _drain(self, timeout: float) -> None:
        try:
            self.conn.drain_events(timeout=max(timeout, 0.0001))
        except TimeoutError:
            pass

    def _finish(self, grace: float) -> None:
        deadline = time.perf_counter() + grace
        while self.sent_at and time.perf_counter() < deadline:
            self._drain(0.05)
        self.sent_at.clear()

    def closed(self, name: str, inflight: int, seconds: float) -> Result:
        self.result = result = Result(name)
        start = time.perf_counter()
        end = start + seconds
        for _ in range(inflight):
            self._send(time.perf_counter())
        while time.perf_counter() < end:
            self._drain(0.01)
            while len(self.sent_at) < inflight:
                self._send(time.perf_counter())
        result.seconds = time.perf_counter() - start
        done = result.answered
        self._finish(5)
        result.answered = done
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
            self._drain(min(interval, next_at - time.perf_counter()))
        self._finish(5)
        result.seconds = seconds
        lost = result.sent - result.answered
        result.errors += lost
        self.result = None
        return result

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001, S110 - closing a benchmark connection
            pass
