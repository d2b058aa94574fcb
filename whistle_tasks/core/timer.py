"""Elapsed time and time budgets on the monotonic clock.

``Timer`` measures how long something took (for logs and metrics); ``Deadline`` carries
what is left of a budget through a chain of calls (the bridge has ``answer_budget_ms`` to
answer FreeSWITCH, and each step waits only for what remains). Both use
``time.perf_counter``, which is monotonic: a wall-clock jump (NTP) changes nothing.
"""

from __future__ import annotations

import time
from types import TracebackType


class Timer:
    """Measures elapsed time; a context manager, or ``start()`` then ``elapsed_ms``.

    ::

        with Timer() as t:
            route(call)
        log.info("routed in %.1f ms", t.elapsed_ms)

    Inside the block (or before ``stop()``) the elapsed time keeps growing; after it, it
    is frozen at the block's duration. A new timer is already started.
    """

    __slots__ = ("_start", "_stop")

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._stop: float | None = None

    def start(self) -> Timer:
        """(Re)start from now; returns self."""
        self._start = time.perf_counter()
        self._stop = None
        return self

    def stop(self) -> float:
        """Freeze the timer; returns the elapsed milliseconds."""
        self._stop = time.perf_counter()
        return self.elapsed_ms

    @property
    def elapsed(self) -> float:
        """Seconds since start (until stop, if stopped)."""
        end = time.perf_counter() if self._stop is None else self._stop
        return end - self._start

    @property
    def elapsed_ms(self) -> float:
        """Milliseconds since start (until stop, if stopped)."""
        return self.elapsed * 1000.0

    def __enter__(self) -> Timer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class Deadline:
    """A budget of ``budget_ms`` milliseconds that starts running when created."""

    __slots__ = ("budget_ms", "_end")

    def __init__(self, budget_ms: float) -> None:
        if budget_ms < 0:
            raise ValueError(f"a deadline budget cannot be negative: {budget_ms} ms")
        self.budget_ms = budget_ms
        self._end = time.perf_counter() + budget_ms / 1000.0

    def remaining_s(self) -> float:
        """Seconds left, never below 0 (pass it as a timeout)."""
        return max(0.0, self._end - time.perf_counter())

    def remaining_ms(self) -> float:
        """Milliseconds left, never below 0."""
        return self.remaining_s() * 1000.0

    def expired(self) -> bool:
        """True once the budget is spent."""
        return time.perf_counter() >= self._end

    def __repr__(self) -> str:
        return f"Deadline(budget_ms={self.budget_ms}, remaining_ms={self.remaining_ms():.1f})"
