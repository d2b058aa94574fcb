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

Check = Callable[[bytes], bool]


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
    def __init__(self, host: str, port: int, make: Callable[[int], bytes],
                 check: Check | None = None) -> None:
        self.host, self.port = host, port
        self.make = make
        self.check = check or (lambda answer: answer.startswith(b"HTTP/1.1 200"))
        self.counter = 0

    def _do(self, result: Result, scheduled: float) -> None:
        self.counter += 1
        payload = self.make(self.counter)
        result.sent += 1
        try:
            answer = one(self.host, self.port, payload)
        except OSError:
            result.errors += 1
            return
        result.answered += 1
        result.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
        if not self.check(answer):
            result.errors += 1

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
        pool = gevent.pool.Pool(2000)
        start = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            at = start + i * interval
            delay = at - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
            pool.spawn(self._do, result, at)
        pool.join(timeout=30)
        result.seconds = seconds
        return result
