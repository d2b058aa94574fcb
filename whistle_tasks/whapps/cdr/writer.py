"""Records → their monthly databases (MODbs), in bulk, idempotent by leg.

Records are grouped by database and written with one ``_bulk_docs`` per database. A
record whose leg is already stored (a redelivered event) comes back as a ``conflict``: it
is counted as a duplicate, not written twice. Any other per-document error is returned for
the caller to retry; a CouchDB that does not answer raises (the caller keeps the events
unacknowledged and tries again).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from whistle_tasks.core.couch import NotFound, get_couch
from whistle_tasks.core.log import get_logger
from whistle_tasks.data import cdrs

log = get_logger(__name__)


@dataclass
class Outcome:
    written: int = 0
    duplicates: int = 0
    partial: int = 0
    failed: list[tuple[dict[str, Any], str]] = field(default_factory=list)


def write(records: list[dict[str, Any]]) -> Outcome:
    """Write records (each with its ``pvt_db``); raises :class:`CouchError` when CouchDB
    does not answer."""
    outcome = Outcome()
    by_db: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for record in records:
        db = record["pvt_db"]
        if record["_id"] in by_db[db]:
            outcome.duplicates += 1  # the same leg twice in one batch
            continue
        by_db[db][record["_id"]] = record
    couch = get_couch()
    for db, docs in by_db.items():
        batch = [{k: v for k, v in d.items() if k != "pvt_db"} for d in docs.values()]
        cdrs.ensure_modb(db)
        try:
            results = couch.bulk_docs(db, batch)
        except NotFound:  # dropped (retention) since this process created it
            cdrs.forget_modb(db)
            cdrs.ensure_modb(db)
            results = couch.bulk_docs(db, batch)
        for doc, result in zip(batch, results, strict=True):
            error = result.get("error")
            if not error:
                outcome.written += 1
                outcome.partial += bool(doc.get("partial"))
            elif error == "conflict":
                outcome.duplicates += 1
            else:
                outcome.failed.append((docs[doc["_id"]], f"{error}: {result.get('reason')}"))
    return outcome
