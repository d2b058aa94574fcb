"""whistle_tasks.data.registrations in this process, against the real CouchDB and Redis:
several contacts per user, newest-wins under concurrent writers (CouchDB revisions and the
Redis Lua script), tombstones, the Redis copy rebuilt by a reader, a node's sync."""

from __future__ import annotations

import random
import threading
import time

import pytest

from tests import support
from whistle_tasks.core.cache import VersionedHashes
from whistle_tasks.core.couch import get_couch
from whistle_tasks.data import registrations


@pytest.fixture(scope="module", autouse=True)
def databases(clean_services: None) -> None:
    get_couch().ensure_system()


@pytest.fixture()
def realm() -> str:
    return f"{support.unique('r')}.example.com"


def reg(realm: str, user: str, contact: str, ts: float, expires: int = 300,
        **extra: object) -> dict:
    return {"Realm": realm, "Username": user, "Contact": contact, "Expires": expires,
            "Event-Timestamp": ts, **extra}


def stored_doc(realm: str, user: str, contact: str) -> dict | None:
    return get_couch().get_or_none("registrations",
                                   registrations.doc_id(realm, user, contact))


def redis_copy(realm: str, user: str) -> dict[str, dict]:
    import json

    fields = VersionedHashes("regs").get(registrations.user_key(realm, user)) or {}
    return {registrations.clean_contact(json.loads(v)["Contact"]): json.loads(v)
            for v in fields.values()}


def fresh_contacts(realm: str, user: str) -> list[dict]:
    registrations._local.clear_local()  # what another process would read now
    return registrations.contacts(realm, user)


def test_contacts_newest_first_and_lookup_is_the_newest(realm: str) -> None:
    now = time.time()
    registrations.store(reg(realm, "1000", "<sip:1000@192.0.2.1:5060>", now - 10))
    registrations.store(reg(realm, "1000", '"Soft" <sip:1000@192.0.2.2:5062;ob>', now - 5))
    registrations.store(reg(realm, "1000", "<sip:1000@192.0.2.3:5060>", now - 1000, 60))  # dead
    found = fresh_contacts(realm, "1000")
    assert [r["Contact"] for r in found] == ["sip:1000@192.0.2.2:5062;ob",
                                            "sip:1000@192.0.2.1:5060"]
    assert registrations.lookup(realm, "1000")["Contact"] == "sip:1000@192.0.2.2:5062;ob"
    # another user with the same contact (a PBX registering two lines) is another document
    registrations.store(reg(realm, "1001", "<sip:1000@192.0.2.1:5060>", now))
    assert len(fresh_contacts(realm, "1000")) == 2 and len(fresh_contacts(realm, "1001")) == 1


def test_an_older_registration_never_replaces_a_newer_one(realm: str) -> None:
    now = time.time()
    contact = "<sip:1000@192.0.2.1:5060>"
    assert registrations.store(reg(realm, "1000", contact, now, **{"User-Agent": "new"})) \
        == "stored"
    assert registrations.store(reg(realm, "1000", contact, now - 1, **{"User-Agent": "old"})) \
        == "older"
    assert stored_doc(realm, "1000", contact)["User-Agent"] == "new"
    assert fresh_contacts(realm, "1000")[0]["User-Agent"] == "new"


def test_unregister_leaves_a_tombstone_that_an_older_registration_cannot_pass(
        realm: str) -> None:
    now = time.time()
    desk, soft = "<sip:1000@192.0.2.1:5060>", "<sip:1000@192.0.2.2:5060>"
    registrations.store(reg(realm, "1000", desk, now - 3))
    registrations.store(reg(realm, "1000", soft, now - 2))
    assert registrations.store(reg(realm, "1000", soft, now, 0)) == "unregistered"
    assert [r["Contact"] for r in fresh_contacts(realm, "1000")] == ["sip:1000@192.0.2.1:5060"]
    # a REGISTER of that phone sent before its un-REGISTER, delivered after it
    assert registrations.store(reg(realm, "1000", soft, now - 1)) == "older"
    assert stored_doc(realm, "1000", soft)["pvt_unregistered"] is True
    assert [r["Contact"] for r in fresh_contacts(realm, "1000")] == ["sip:1000@192.0.2.1:5060"]
    # the phone registers again later: back
    registrations.store(reg(realm, "1000", soft, now + 1))
    assert len(fresh_contacts(realm, "1000")) == 2
    # an un-REGISTER without a contact ends every phone of the user
    registrations.store(reg(realm, "1000", "", now + 2, 0))
    assert fresh_contacts(realm, "1000") == []


def test_concurrent_shuffled_writers_always_end_with_the_newest(realm: str) -> None:
    """Eight threads write 40 versions of two contacts (and un-REGISTERs) in random order,
    five rounds: CouchDB and Redis both end with each contact's newest version."""
    a, b = "<sip:1000@192.0.2.1:5060>", "<sip:1000@192.0.2.2:5060>"
    for round_ in range(5):
        base = time.time() + round_ * 100
        work = [reg(realm, "1000", a, base + i, **{"User-Agent": f"a{i}"}) for i in range(40)]
        work += [reg(realm, "1000", b, base + i, **{"User-Agent": f"b{i}"}) for i in range(40)]
        work += [reg(realm, "1000", b, base + 39.5, 0)]  # b's newest is its un-REGISTER
        random.shuffle(work)
        errors: list[BaseException] = []

        def run(items: list[dict], errors: list[BaseException] = errors) -> None:
            try:
                for item in items:
                    registrations.store(item)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(work[i::8],)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        assert stored_doc(realm, "1000", a)["User-Agent"] == "a39"
        assert stored_doc(realm, "1000", b).get("pvt_unregistered") is True
        copy = redis_copy(realm, "1000")
        if copy:  # the Redis copy exists once a reader made it complete
            assert copy["sip:1000@192.0.2.1:5060"]["User-Agent"] == "a39"
            assert copy["sip:1000@192.0.2.2:5060"].get("pvt_unregistered") is True
        found = fresh_contacts(realm, "1000")
        assert [(r["Contact"], r["User-Agent"]) for r in found] == [
            ("sip:1000@192.0.2.1:5060", "a39")]


def test_a_reader_rebuilding_redis_does_not_bring_a_contact_back(realm: str) -> None:
    """A reader that loaded the user from CouchDB before an un-REGISTER writes what it
    loaded into Redis after it: the tombstone stays (the Lua script keeps the newer)."""
    now = time.time()
    contact = "<sip:1000@192.0.2.1:5060>"
    registrations.store(reg(realm, "1000", contact, now - 5))
    key = registrations.user_key(realm, "1000")
    stale = registrations._user_docs(realm, "1000")           # the reader's snapshot
    registrations._hashes.delete(key)                         # Redis lost it meanwhile
    registrations.store(reg(realm, "1000", contact, now, 0))  # un-REGISTER (Couch + Redis)
    registrations._hashes.merge(key, [registrations._hash_item(d) for d in stale],
                                complete=True)                # the reader's late write
    assert fresh_contacts(realm, "1000") == []
    # and a reader that finds no copy at all loads the tombstone too
    registrations._hashes.delete(key)
    assert fresh_contacts(realm, "1000") == []
    assert redis_copy(realm, "1000")["sip:1000@192.0.2.1:5060"]["pvt_unregistered"] is True


def test_a_writer_without_the_whole_copy_does_not_hide_the_other_contacts(realm: str) -> None:
    """Redis lost the user (restart): the next write creates a hash with one contact; a
    reader must not take it for the whole user."""
    now = time.time()
    registrations.store(reg(realm, "1000", "<sip:1000@192.0.2.1:5060>", now - 2))
    registrations._hashes.delete(registrations.user_key(realm, "1000"))
    registrations.store(reg(realm, "1000", "<sip:1000@192.0.2.2:5060>", now))
    assert len(fresh_contacts(realm, "1000")) == 2


def test_sync_stores_what_the_node_holds_and_removes_what_it_lost(realm: str) -> None:
    now = time.time()
    node, other = f"{support.unique('fs')}", f"{support.unique('fs')}"
    kept = reg(realm, "1000", "<sip:1000@192.0.2.1:5060>", now - 30, 3600,
               **{"FreeSWITCH-Hostname": node, "Account-ID": "acc-1"})
    lost = reg(realm, "1000", "<sip:1000@192.0.2.2:5060>", now - 20, 3600,
               **{"FreeSWITCH-Hostname": node})
    elsewhere = reg(realm, "1001", "<sip:1001@192.0.2.3:5060>", now - 20, 3600,
                    **{"FreeSWITCH-Hostname": other})
    newer = reg(realm, "1002", "<sip:1002@192.0.2.4:5060>", now + 5, 3600,
                **{"FreeSWITCH-Hostname": node})  # registered after the node was asked
    for item in (kept, lost, elsewhere, newer):
        registrations.store(item)
    held = [
        # the node reports what it holds: seconds left, as of `now`
        reg(realm, "1000", '"" <sip:1000@192.0.2.1:5060>', now, 3570, **{"Call-ID": "c1"}),
        reg(realm, "1003", '"" <sip:1003@192.0.2.5:5060>', now, 120, **{"Call-ID": "c3"}),
    ]
    counts = registrations.sync(node, now, held)
    assert counts == {"held": 2, "stored": 1, "unchanged": 1, "removed": 1}
    assert [r["Contact"] for r in fresh_contacts(realm, "1000")] == ["sip:1000@192.0.2.1:5060"]
    assert fresh_contacts(realm, "1000")[0]["Account-ID"] == "acc-1"   # nothing lost
    assert fresh_contacts(realm, "1001")       # another node's: untouched
    assert fresh_contacts(realm, "1002")       # newer than the snapshot: untouched
    (unknown,) = fresh_contacts(realm, "1003")
    assert unknown["FreeSWITCH-Hostname"] == node and unknown["Call-ID"] == "c3"
    # the lost registration's REGISTER, delivered late, cannot bring it back
    assert registrations.store(lost) == "older"
    # the same sync again changes nothing
    assert registrations.sync(node, now + 1, held)["stored"] == 0


def test_a_repeat_of_the_stored_version_is_answered_without_a_write(realm: str) -> None:
    now = float(int(time.time()))
    first = reg(realm, "rep", "sip:rep@192.0.2.7:5060", now)
    assert registrations.store(first) == "stored"
    rev = stored_doc(realm, "rep", "sip:rep@192.0.2.7:5060")["_rev"]
    skipped = registrations.STATS["repeats_skipped"]
    # the same event again (a replay, a redelivery) and an older one: no CouchDB write
    assert registrations.store(dict(first)) == "older"
    assert registrations.store(reg(realm, "rep", "sip:rep@192.0.2.7:5060", now - 1)) == "older"
    assert registrations.STATS["repeats_skipped"] == skipped + 2
    assert stored_doc(realm, "rep", "sip:rep@192.0.2.7:5060")["_rev"] == rev
    # a newer one is written, and an operator's flush forgets what was remembered
    assert registrations.store(reg(realm, "rep", "sip:rep@192.0.2.7:5060", now + 1)) == "stored"
    registrations.flush(realm, "rep")
    assert registrations.store(dict(first)) == "stored"
    assert fresh_contacts(realm, "rep")[0]["Event-Timestamp"] == now


def test_concurrent_repeats_of_one_contact_write_it_once(realm: str) -> None:
    msg = reg(realm, "storm", "sip:storm@192.0.2.8:5060", 2000.0)
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def writer() -> None:
        start.wait()
        outcomes.append(registrations.store(dict(msg)))

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["older"] * 7 + ["stored"]
    # one revision: the repeats were serialized behind the first write and then skipped
    assert stored_doc(realm, "storm", "sip:storm@192.0.2.8:5060")["_rev"].startswith("1-")
