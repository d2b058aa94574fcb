"""Compaction (whistle_tasks.whapps.maintenance.compaction): the rule, sizes, the run, the CLI,
the task.

Against the real pouchdb-server (test prefix) and Redis (db 15). pouchdb-server reports
only ``disk_size``, so its data sizes are estimated from the live documents; CouchDB's
reported sizes are checked with the info documents CouchDB 1.x and 3.x return.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
from click.testing import CliRunner

from tests import support
from whistle_tasks.cli import main
from whistle_tasks.core.couch import get_couch
from whistle_tasks.ops import provisioning
from whistle_tasks.whapps.maintenance import compaction, tasks
from whistle_tasks.whapps.maintenance.compaction import Report, should_compact

KIB = 1024
MIN_DATA = 131072


# --- the pure rule -------------------------------------------------------------------------

@pytest.mark.parametrize(("disk", "data", "expected"), [
    (10 * MIN_DATA, MIN_DATA, False),              # data exactly at the threshold: not over
    (10 * MIN_DATA, MIN_DATA + 1, True),           # one byte over, 90 % waste
    (524292, 393219, False),                       # waste exactly 25 % (131073 / 524292)
    (524293, 393219, True),                        # just over 25 %
    (400_000, 393_219, False),                     # 1.7 % waste
    (MIN_DATA * 2, MIN_DATA // 2, False),          # lots of waste, too little data
    (0, 0, False),
])
def test_rule_boundaries(disk: int, data: int, expected: bool) -> None:
    go, why = should_compact(disk, data, MIN_DATA, 0.25)
    assert go is expected, why


def test_rule_reasons_and_unknown() -> None:
    assert should_compact(10 * MIN_DATA, 1000, MIN_DATA, 0.25) == (
        False, "data 1000 B <= 128.0 KiB")
    assert should_compact(524292, 393219, MIN_DATA, 0.25) == (False, "waste 25% <= 25%")
    assert should_compact(1_000_000, None, MIN_DATA, 0.25) == (False, "data size unknown")
    assert should_compact(None, 500_000, MIN_DATA, 0.25) == (False, "data size unknown")
    go, why = should_compact(1_000_000, 200_000, MIN_DATA, 0.25)
    assert go and why == "data 195.3 KiB, waste 80%"


def test_rule_thresholds_come_from_settings() -> None:
    # defaults: compact_min_data=131072, compact_min_ratio=0.25
    assert should_compact(524293, 393219)[0] is True
    assert should_compact(524292, 393219)[0] is False
    assert should_compact(10 * MIN_DATA, MIN_DATA)[0] is False


def test_reported_sizes_of_each_server() -> None:
    couch3 = {"db_name": "x", "sizes": {"file": 900_000, "external": 500_000, "active": 300_000},
              "compact_running": False}
    couch1 = {"db_name": "x", "disk_size": 800_000, "data_size": 200_000}
    pouch = {"doc_count": 2, "update_seq": 2, "db_name": "x", "disk_size": 6133}
    assert compaction.reported_sizes(couch3) == (900_000, 300_000)
    assert compaction.reported_sizes(couch1) == (800_000, 200_000)
    assert compaction.reported_sizes(pouch) == (6133, None)
    assert compaction.reported_sizes({}) == (None, None)


def test_display_name_restores_account_databases() -> None:
    assert (compaction.display_name("account6608b9d79d7e4ae690e6b50316c86ccd")
            == "account/66/08/b9d79d7e4ae690e6b50316c86ccd")
    assert compaction.display_name("account/66/08/b9d79d7e4ae690e6b50316c86ccd") == (
        "account/66/08/b9d79d7e4ae690e6b50316c86ccd")
    assert compaction.display_name("accounts") == "accounts"
    assert compaction.display_name("accountabcdef") == "accountabcdef"


def test_human_sizes() -> None:
    assert compaction.human(None) == "?"
    assert compaction.human(1000) == "1000 B"
    assert compaction.human(1536) == "1.5 KiB"
    assert compaction.human(5 * 1024 * 1024) == "5.0 MiB"


# --- against pouchdb-server -------------------------------------------------------------

def _make_db(name: str, docs: int, body: int = 200) -> dict[str, str]:
    couch = get_couch()
    couch.delete_db(name)
    couch.ensure_db(name)
    rows = couch.bulk_docs(name, [{"_id": f"d{i:05d}", "v": "x" * body, "n": 0}
                                  for i in range(docs)])
    return {r["id"]: r["rev"] for r in rows}


def _churn(name: str, revs: dict[str, str], rounds: int, delete: int = 0) -> dict[str, str]:
    """Rewrite every document ``rounds`` times, then delete ``delete`` of them."""
    couch = get_couch()
    for n in range(rounds):
        rows = couch.bulk_docs(name, [{"_id": k, "_rev": v, "v": "y" * 200, "n": n + 1}
                                      for k, v in revs.items()])
        revs = {r["id"]: r["rev"] for r in rows}
    gone = list(revs)[:delete]
    couch.bulk_docs(name, [{"_id": k, "_rev": revs[k], "_deleted": True} for k in gone])
    return {k: v for k, v in revs.items() if k not in gone}


@pytest.fixture()
def dbs(clean_services: None):  # noqa: ANN201
    """Unique database names, deleted after the test."""
    made: list[str] = []

    def new(kind: str) -> str:
        made.append(f"compact_{kind}_{support.unique('')}")
        return made[-1]

    yield new
    for name in made:
        get_couch().delete_db(name)


@pytest.fixture()
def churned(clean_services: None):  # noqa: ANN201
    """A database grown by churn: 1,000 docs rewritten 10 times, 500 of them deleted.

    One per test (about a second to make): a test's database must not depend on others."""
    name = f"compact_churn_{support.unique('')}"
    revs = _make_db(name, 1000)
    _churn(name, revs, rounds=10, delete=500)
    yield name
    get_couch().delete_db(name)


def test_estimate_is_the_json_size_of_live_documents(dbs) -> None:  # noqa: ANN001
    name = dbs("estimate")
    revs = _make_db(name, 2500, body=50)  # more than one page of 1,000
    _churn(name, revs, rounds=1, delete=100)
    couch = get_couch()
    expected = sum(len(json.dumps(row["doc"], separators=(",", ":")))
                   for row in couch.all_docs(name, include_docs=True))
    assert compaction.estimate_data_size(couch, name) == expected
    assert compaction.estimate_data_size(couch, name, page=7) == expected
    disk, data, source = compaction.measure(couch, name, couch.db_info(name))
    assert (data, source) == (expected, "estimated") and disk and disk > data
    assert compaction.measure(couch, name, couch.db_info(name), estimate_max_docs=100)[1:] == (
        None, "unknown")


def test_rule_picks_churned_and_skips_small(churned: str, dbs) -> None:  # noqa: ANN001
    small = dbs("small")
    _make_db(small, 20)
    reports = compaction.compact([churned, small])
    by_db = {r.db: r for r in reports}
    assert [r.db for r in reports] == sorted([churned, small])

    big = by_db[churned]
    assert big.action == "compacted", big
    assert big.reason == "" and big.data_source == "estimated"
    assert big.data_before > MIN_DATA
    assert big.disk_after is not None and big.disk_after < big.disk_before
    print(f"\nchurned pouchdb db: disk {big.disk_before} -> {big.disk_after} bytes "
          f"({1 - big.disk_after / big.disk_before:.0%} less), data {big.data_before} "
          f"(estimated), {big.seconds:.2f}s")

    little = by_db[small]
    assert little.action == "skipped"
    assert little.reason.startswith("data ") and "<= 128.0 KiB" in little.reason
    assert little.disk_after == little.disk_before  # untouched

    # a second run: pouchdb's overhead still looks like waste, but nothing was written
    again = {r.db: r for r in compaction.compact([churned, small])}
    assert again[churned].action == "skipped"
    assert again[churned].reason == "nothing written since the last compaction"
    # ... until something is written
    get_couch().save(churned, {"_id": "late-write", "v": 1})
    assert compaction.compact([churned])[0].action == "compacted"


def test_force_compacts_what_the_rule_skips(dbs) -> None:  # noqa: ANN001
    small = dbs("forced")
    _make_db(small, 20)
    report = compaction.compact([small], force=True)[0]
    assert report.action == "compacted"
    assert report.reason.startswith("forced; rule: data ")


def test_unknown_data_size_is_skipped_unless_forced(dbs) -> None:  # noqa: ANN001
    name = dbs("unknown")
    _make_db(name, 50)
    report = compaction.compact([name], estimate_max_docs=10)[0]
    assert (report.action, report.data_source) == ("skipped", "unknown")
    assert report.data_before is None and report.disk_before
    assert report.reason.startswith("data size unknown")
    forced = compaction.compact([name], force=True, estimate_max_docs=10)[0]
    assert forced.action == "compacted" and forced.reason.startswith("forced; rule: data size")


def test_missing_database_fails_when_named(dbs) -> None:  # noqa: ANN001
    report = compaction.compact([dbs("absent")])[0]
    assert (report.action, report.reason) == ("failed", "no such database")


def test_design_view_compaction_400_is_logged_once(dbs, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    first, second = dbs("views1"), dbs("views2")
    couch = get_couch()
    for name in (first, second):
        _make_db(name, 10)
        couch.save(name, {"_id": "_design/t", "views": {
            "by_n": {"map": "function(doc) { emit(doc.n, null); }"}}})
        couch.view(name, "t", "by_n", limit=1)  # build the index
    compaction._no_view_compaction.clear()  # as in a fresh process
    with caplog.at_level(logging.INFO, logger=compaction.log.name):
        reports = compaction.compact([first, second], force=True)
    assert [r.action for r in reports] == ["compacted", "compacted"]
    assert [r.views for r in reports] == ["not supported by server"] * 2
    said = [r for r in caplog.records if "does not compact design-document views" in r.message]
    assert len(said) == 1 and said[0].levelno == logging.INFO
    # _view_cleanup ran and the view still answers
    assert couch.view(first, "t", "by_n", key=0)


def test_account_databases_are_found_and_addressed(clean_services: None) -> None:
    realm = f"{support.unique('c')}.example.com"
    account = provisioning.create_account("Compaction", realm)
    db = account["pvt_account_db"]
    assert db.startswith("account/")
    listed = get_couch().all_dbs()
    # pouchdb-server lists it without the slashes; CouchDB with them
    assert db in listed or db.replace("/", "") in listed
    reports = compaction.compact()
    mine = [r for r in reports if r.db == db]
    assert len(mine) == 1 and mine[0].action == "skipped", mine
    assert mine[0].disk_before and mine[0].data_source == "estimated"
    assert not [r for r in reports if r.action == "failed"], reports


# --- one run at a time -------------------------------------------------------------------

def test_second_concurrent_run_returns_locked(churned: str, dbs) -> None:  # noqa: ANN001
    extra = [dbs(f"slow{i}") for i in range(4)]
    for name in extra:
        _churn(name, _make_db(name, 600), rounds=3)
    client = compaction.redis_client()
    first: list[list[Report]] = []
    runner = threading.Thread(target=lambda: first.append(
        compaction.compact([churned, *extra], force=True, parallel=1)))
    runner.start()
    support.wait_until(lambda: client.exists(compaction.LOCK_NAME), timeout=10,
                       what="the first run to take the lock")
    second = compaction.compact([churned], force=True)
    runner.join(60)
    assert [(r.db, r.action) for r in second] == [("*", "locked")]
    assert second[0].reason == "another compaction run holds the lock"
    assert [r.action for r in first[0]] == ["compacted"] * 5, first[0]
    assert not client.exists(compaction.LOCK_NAME)  # released at the end
    assert compaction.compact([churned])[0].action != "locked"


def test_lock_expires_if_its_holder_dies(dbs) -> None:  # noqa: ANN001
    name = dbs("expiry")
    _make_db(name, 5)
    client = compaction.redis_client()
    with compaction.run_lock(client, ttl=0.3) as lock:
        assert lock is not None
        assert compaction.compact([name])[0].action == "locked"
        time.sleep(0.5)  # a holder that stopped renewing
        assert compaction.compact([name])[0].action == "skipped"


# --- the CLI and the task -----------------------------------------------------------------

def test_cli_table_and_exit_codes(churned: str, dbs) -> None:  # noqa: ANN001
    small = dbs("cli")
    _make_db(small, 20)
    get_couch().save(churned, {"_id": f"cli-{support.unique()}", "v": 1})
    runner = CliRunner()
    result = runner.invoke(main, ["compact", "--db", churned, "--db", small])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["DATABASE", "DISK", "BEFORE", "DATA", "BEFORE", "DISK", "AFTER",
                                "DATA", "AFTER", "DATA", "SIZE", "VIEWS", "TIME", "ACTION"]
    big = next(line for line in lines if line.startswith(churned))
    little = next(line for line in lines if line.startswith(small))
    assert "estimated" in big and big.rstrip().endswith("compacted")
    assert "estimated" in little and "skipped (data " in little
    assert lines[-1] == "1 compacted, 1 skipped, 0 failed"

    failed = runner.invoke(main, ["compact", "--db", dbs("nothere")])
    assert failed.exit_code == 1
    assert "failed (no such database)" in failed.output

    client = compaction.redis_client()
    with compaction.run_lock(client) as lock:
        assert lock is not None
        locked = runner.invoke(main, ["compact", "--db", small])
    assert locked.exit_code == 3
    assert "not started: another compaction run holds the lock" in locked.output


def test_celery_task_runs_on_the_maintenance_worker(churned: str, whapp_worker) -> None:  # noqa: ANN001
    """Sent through RabbitMQ like beat sends it. Checked by its effect, not by our worker's
    log: another worker on the same test queue may be the one that takes it."""
    couch = get_couch()
    couch.save(churned, {"_id": f"task-{support.unique()}", "v": 1})
    seq = couch.db_info(churned)["update_seq"]
    seq_key = compaction.SEQ_KEY + couch.real_name(churned)
    client = compaction.redis_client()
    client.delete(seq_key)
    tasks.compact.delay()
    # a worker compacted the churned database and remembered its update_seq
    support.wait_until(lambda: client.get(seq_key) is not None, timeout=120, interval=0.2,
                       what="a worker's compaction run")
    assert json.loads(client.get(seq_key)) == seq
    assert "maintenance.compact" in whapp_worker.output()  # registered on our worker
