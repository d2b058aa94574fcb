"""Tasks of the maintenance whapp: ``maintenance.compact`` (beat, every compact_interval s)."""

from __future__ import annotations

from collections import Counter

from whistle_tasks.celery import app
from whistle_tasks.core.config import settings
from whistle_tasks.core.log import get_logger
from whistle_tasks.whapps.maintenance import compaction

log = get_logger(__name__)


@app.task(name="maintenance.compact", ignore_result=True, acks_late=False,
          expires=settings.compact_interval)
def compact() -> dict[str, int]:
    """Beat: compact the databases that Kazoo's rule picks (see :mod:`.compaction`).

    ``expires``: a run that waited in the queue past the next beat tick is dropped, so a
    maintenance worker that was down does not find a pile of compactions on its return.
    Not acked late: a worker lost mid-run leaves nothing to redo that the next tick won't.
    """
    reports = compaction.compact()
    counts = Counter(r.action for r in reports)
    for r in reports:
        if r.action == "failed":
            log.error("compaction of %s failed: %s", r.db, r.reason)
    log.info("compaction run: %s", dict(counts) or "no databases")
    return dict(counts)
