"""Priming a worker's credential cache: bounded (WHISTLE_PRIME_CREDENTIALS), read in pages,
the registered (hot) devices first by multi-key reads, and every credential still found by
a cold read from CouchDB when it was not primed."""

from __future__ import annotations

import pytest

from tests import support
from whistle_tasks.data import accounts
from whistle_tasks.ops import provisioning

pytestmark = pytest.mark.usefixtures("clean_services")


@pytest.fixture()
def realm_users() -> tuple[str, list[str]]:
    realm = f"{support.unique('prime')}.example.com"
    provisioning.create_account("Prime", realm)
    users = [f"{500 + i}" for i in range(23)]
    provisioning.create_devices(realm, [{"username": u, "password": f"pw-{u}"} for u in users])
    return realm, users


def forget_all(realm: str, users: list[str]) -> None:
    for user in users:
        accounts.forget_credentials(realm, user, shared=True)


def cached(realm: str, users: list[str]) -> set[str]:
    """The users whose credentials the cache holds (without reading CouchDB)."""
    found = accounts._credentials.get_many([accounts.cred_key(realm, u) for u in users])
    return {key.rpartition("/")[2] for key in found}


def test_prime_reads_every_credential_in_pages(realm_users: tuple[str, list[str]]) -> None:
    realm, users = realm_users
    forget_all(realm, users)
    assert cached(realm, users) == set()
    primed = accounts.prime(limit=10**9, page=5)  # 23 devices here, 5 a page: many pages
    assert primed >= len(users)
    assert cached(realm, users) == set(users)
    assert accounts.credentials(realm, users[7])["sip"]["password"] == f"pw-{users[7]}"


def test_prime_is_bounded_and_the_hot_devices_come_first(
        realm_users: tuple[str, list[str]]) -> None:
    realm, users = realm_users
    forget_all(realm, users)
    hot = [(realm.upper(), users[20]), (realm, users[3]), (realm, "nobody-such")]
    accounts.prime(limit=2, hot=hot, page=1)
    # exactly the two registered devices (an unknown one primes nothing), nothing else
    assert cached(realm, users) == {users[20], users[3]}
    # a device not primed is read from CouchDB at its first look-up (the cold tier)
    assert accounts.credentials(realm, users[11])["sip"]["password"] == f"pw-{users[11]}"
    assert users[11] in cached(realm, users)


def test_prime_zero_primes_no_credential(realm_users: tuple[str, list[str]]) -> None:
    realm, users = realm_users
    forget_all(realm, users)
    assert accounts.prime(limit=0, hot=[(realm, users[0])]) >= 1  # the accounts still
    assert cached(realm, users) == set()


def test_concurrent_cold_reads_each_get_their_own_credentials(
        realm_users: tuple[str, list[str]]) -> None:
    import threading

    realm, users = realm_users
    forget_all(realm, users)
    accounts.forget_credentials(realm, "nobody-such", shared=True)
    got: dict[str, object] = {}
    asked = [*users, "nobody-such"]
    start = threading.Barrier(len(asked))

    def read(user: str) -> None:
        start.wait()
        creds = accounts.credentials(realm, user)
        got[user] = creds and creds["sip"]["password"]

    reads = accounts._cold_credentials.stats["reads"]
    threads = [threading.Thread(target=read, args=(u,)) for u in asked]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert got == {**{u: f"pw-{u}" for u in users}, "nobody-such": None}
    # grouped: fewer multi-key reads than users (each carries the keys missed meanwhile)
    assert accounts._cold_credentials.stats["reads"] - reads < len(asked)
    assert cached(realm, users) == set(users)
