"""Tasks of the cdr whapp (queue ``cdr``): retention of the monthly databases and the
sweep of the live index (beat). The records themselves are written by the worker's
consumer (:mod:`.consumer`), not by tasks: hangup events are not Celery messages."""

from __future__ import annotations

from whistle_tasks.celery import app
from whistle_tasks.core.config import settings
from whistle_tasks.core.log import get_logger
from whistle_tasks.whapps.cdr import live, retention

log = get_logger(__name__)


@app.task(name="cdr.retention", ignore_result=True, acks_late=False, expires=3600)
def expire_months() -> int:
    """Beat: drop the CDR databases older than ``WHISTLE_CDR_RETENTION_MONTHS``."""
    return len(retention.expire(settings.cdr_retention_months))


@app.task(name="cdr.sweep_calls", ignore_result=True, acks_late=False, expires=600)
def sweep_calls() -> int:
    """Beat: forget calls in progress whose hangup was never seen."""
    return live.sweep()
