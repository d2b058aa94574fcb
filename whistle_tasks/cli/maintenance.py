"""``whistle compact``: CouchDB compaction by hand, with a before/after table."""

from __future__ import annotations

import click

from whistle_tasks.cli.table import echo
from whistle_tasks.whapps.maintenance import compaction

EXIT_FAILED = 1
EXIT_LOCKED = 3


def _size(n: int | None) -> str:
    return "unknown" if n is None else compaction.human(n)


@click.command("compact")
@click.option("--db", "dbs", multiple=True, metavar="NAME",
              help="Only this database (repeatable); default: every database.")
@click.option("--force", is_flag=True, help="Compact even when the rule would skip.")
def compact_cmd(dbs: tuple[str, ...], force: bool) -> None:
    """Compact CouchDB databases by Kazoo's rule (data over compact_min_data and
    (disk - data) / disk over compact_min_ratio).

    The DATA SIZE column says where the data size comes from: "reported" by CouchDB,
    "estimated" from the live documents (pouchdb-server reports none), or "unknown".
    Exit status 1 when a database failed, 3 when another compaction run holds the lock.
    """
    reports = compaction.compact(list(dbs) or None, force=force)
    if len(reports) == 1 and reports[0].action == "locked":
        click.echo(f"not started: {reports[0].reason}", err=True)
        raise SystemExit(EXIT_LOCKED)
    echo(["database", "disk before", "data before", "disk after", "data after", "data size",
          "views", "time", "action"],
         [(r.db, _size(r.disk_before), _size(r.data_before),
           _size(r.disk_after), _size(r.data_after), r.data_source or "-",
           r.views or "-", f"{r.seconds:.1f}s", r.outcome) for r in reports],
         empty="(no databases)")
    counts = {a: sum(r.action == a for r in reports) for a in ("compacted", "skipped", "failed")}
    click.echo(", ".join(f"{n} {a}" for a, n in counts.items()))
    if counts["failed"]:
        raise SystemExit(EXIT_FAILED)


def register(main: click.Group) -> None:
    main.add_command(compact_cmd)
