"""An HTTP load generator shaped like FreeSWITCH's mod_xml_curl (gevent, raw sockets).

Each request opens a new TCP connection, POSTs a form body with the headers libcurl sends
and reads the answer to the end, as FreeSWITCH does for every lookup. Two shapes, as in
:mod:`bench.amqp_load`: closed loop (``inflight`` requests outstanding → throughput) and
open loop (a fixed schedule; latency from the *scheduled* send time).

Run in its own process (``python -m bench.http_load``-style use from a benchmark script):
it monkey-patches nothing itself and uses gevent's sockets directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent
import gevent.pool
from gevent import socket

from bench.common import Result

#: a request: its bytes and what identifies its exact expected answer (for ``check``)
Request = tuple[bytes, object]
Check = Callable[[object, bytes], bool]  # (the request's key, the answer) -> right?


def request_bytes(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: freeswitch-xml/1.0\r\n"
            f"Accept: */*\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n\r\n")
    return head.encode() + body


def one(host: str, port: int, payload: bytes, timeout: float = 10.0) -> bytes:
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(payload)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)
    finally:
        sock.close()


class HttpLoad:
    """``make(i)`` gives the i-th request and its key; ``check(key, answer)`` says whether
    the answer is exactly the one expected for it. Every request ends right, wrong, error
    (connection refused, reset...) or timeout (no whole answer within ``timeout``)."""

    def __init__(self, host: str, port: int, make: Callable[[int], Request],
                 check: Check, timeout: float = 10.0) -> None:
        self.host, self.port = host, port
        self.make = make
        self.check = check
        self.timeout = timeout
        self.counter = 0

    def _do(self, result: Result, scheduled: float) -> None:
        self.counter += 1
        payload, key = self.make(self.counter)
        result.sent += 1
        try:
            answer = one(self.host, self.port, payload, self.timeout)
        except TimeoutError:  # socket.timeout
            result.timeouts += 1
            result.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
            return
        except OSError:
            result.errors += 1
            result.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
            return
        result.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
        if self.check(key, answer):
            result.right += 1
        else:
            result.wrong += 1

    def closed(self, name: str, inflight: int, seconds: float) -> Result:
        result = Result(name)
        end = time.perf_counter() + seconds

        def worker() -> None:
            while time.perf_counter() < end:
                self._do(result, time.perf_counter())

        start = time.perf_counter()
        gevent.joinall([gevent.spawn(worker) for _ in range(inflight)])
        result.seconds = time.perf_counter() - start
        return result

    def open(self, name: str, rate: float, seconds: float) -> Result:
        result = Result(name)
        interval = 1.0 / rate
        pool = gevent.pool.Pool(5000)
        start = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            at = start + i * interval
            delay = at - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
            pool.spawn(self._do, result, at)
        # every request has its own socket timeout; this only guards against a hang
        if not pool.join(timeout=self.timeout + 30):
            stuck = len(pool)
            pool.kill()
            result.timeouts += stuck
            result.latencies_ms.extend([(self.timeout + 30) * 1000] * stuck)
        result.seconds = seconds
        return result
