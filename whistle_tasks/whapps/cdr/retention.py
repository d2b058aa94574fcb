"""Retention of the monthly CDR databases: months older than the setting are dropped whole.

``WHISTLE_CDR_RETENTION_MONTHS`` = N keeps the current month and the N - 1 before it
(0 keeps everything). A MODb is deleted as one database: no document-by-document purge,
no compaction needed afterwards. Archive a month before it goes by replicating its
database elsewhere (CouchDB ``_replicate``); the name says which account and month it is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from whistle_tasks.core.couch import CouchError, get_couch
from whistle_tasks.core.log import get_logger
from whistle_tasks.data import cdrs

log = get_logger(__name__)


@dataclass
class Dropped:
    db: str
    month: str


def oldest_kept(months: int, today: dt.date | None = None) -> str:
    """``YYYYMM`` of the oldest month kept when ``months`` months are kept."""
    today = today or dt.datetime.now(dt.UTC).date()
    index = today.year * 12 + today.month - 1 - (months - 1)
    return f"{index // 12:04d}{index % 12 + 1:02d}"


def expire(months: int, today: dt.date | None = None) -> list[Dropped]:
    """Drop the MODbs older than the last ``months`` months; returns what went."""
    if months <= 0:
        return []
    keep_from = oldest_kept(months, today)
    couch = get_couch()
    dropped = []
    for name, _account, month in cdrs.modbs():
        if month >= keep_from:
            continue
        try:
            couch.delete_db(name)
        except CouchError as exc:
            log.error("retention: cannot drop %s: %s", name, exc)
            continue
        cdrs.forget_modb(name)
        dropped.append(Dropped(name, month))
    if dropped:
        log.info("retention: dropped %d CDR databases older than %s", len(dropped), keep_from)
    return dropped
