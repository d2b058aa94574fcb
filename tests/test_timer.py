"""Timer and Deadline on the monotonic clock (real sleeps, short ones)."""

from __future__ import annotations

import time

import pytest

from whistle_tasks.core.timer import Deadline, Timer


def test_timer_as_context_manager_freezes_at_exit():
    with Timer() as t:
        time.sleep(0.05)
    frozen = t.elapsed_ms
    assert 45 <= frozen < 1000
    time.sleep(0.02)
    assert t.elapsed_ms == frozen
    assert t.elapsed == pytest.approx(frozen / 1000)


def test_timer_runs_until_stopped_and_restarts():
    t = Timer()
    time.sleep(0.02)
    first = t.elapsed_ms
    time.sleep(0.02)
    assert t.elapsed_ms > first >= 15
    stopped = t.stop()
    assert stopped >= 35 and t.elapsed_ms == stopped
    assert t.start() is t
    assert t.elapsed_ms < stopped


def test_timer_exception_still_stops():
    t = Timer()
    with pytest.raises(RuntimeError), t:
        time.sleep(0.01)
        raise RuntimeError("boom")
    frozen = t.elapsed_ms
    time.sleep(0.01)
    assert t.elapsed_ms == frozen >= 5


def test_deadline_counts_down_and_expires():
    d = Deadline(80)
    assert not d.expired()
    assert 0 < d.remaining_ms() <= 80
    assert d.remaining_s() == pytest.approx(d.remaining_ms() / 1000, abs=0.005)
    time.sleep(0.03)
    assert d.remaining_ms() <= 55
    time.sleep(0.06)
    assert d.expired()
    assert d.remaining_ms() == 0.0 and d.remaining_s() == 0.0
    assert "budget_ms=80" in repr(d)


def test_zero_budget_is_expired_at_once_and_negative_is_refused():
    assert Deadline(0).expired()
    with pytest.raises(ValueError, match="cannot be negative"):
        Deadline(-1)
