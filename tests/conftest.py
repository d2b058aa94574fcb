"""Test environment: real RabbitMQ, Redis and pouchdb-server, isolated from `make run`.

Tests use their own RabbitMQ vhost (``whistle_test``), Redis database (15) and CouchDB
database prefix (``test_``); `make run` uses vhost ``/``, Redis db 0 and no prefix. The
variables are set here, before any Whistle module is imported, so the settings object of
the test process (and of every process a test starts, which inherits the environment)
points at the test resources. ``make test`` creates the vhost.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# WHISTLE_TEST_ISOLATE=1: a vhost, CouchDB prefix and Redis db of this session's own, so
# several test sessions can share one machine (developers running tests side by side).
_ISOLATE = os.environ.get("WHISTLE_TEST_ISOLATE") == "1"
_SESSION = f"whistle_test_{os.getpid()}" if _ISOLATE else "whistle_test"
if "WHISTLE_TEST_AMQP_URL" in os.environ:  # a child of a test session: use its resources
    _ISOLATE = False
if _ISOLATE:
    subprocess.run(["rabbitmqctl", "add_vhost", _SESSION], capture_output=True, check=False)
    subprocess.run(["rabbitmqctl", "set_permissions", "-p", _SESSION, "guest", ".*", ".*", ".*"],
                   capture_output=True, check=True)

TEST_ENV = {
    "WHISTLE_AMQP_URL": os.environ.get("WHISTLE_TEST_AMQP_URL",
                                       f"amqp://guest:guest@127.0.0.1:5672/{_SESSION}"),
    "WHISTLE_REDIS_URL": os.environ.get(
        "WHISTLE_TEST_REDIS_URL",
        f"redis://127.0.0.1:6379/{1 + os.getpid() % 12 if _ISOLATE else 15}"),
    "WHISTLE_COUCH_URL": os.environ.get("WHISTLE_TEST_COUCH_URL", "http://127.0.0.1:5984"),
    "WHISTLE_COUCH_PREFIX": os.environ.get("WHISTLE_TEST_COUCH_PREFIX",
                                           f"test{os.getpid()}_" if _ISOLATE else "test_"),
    "WHISTLE_LOG_LEVEL": "INFO",
}
os.environ.update(TEST_ENV)
# a child process that imports this module again keeps the same resources
os.environ.update({k.replace("WHISTLE_", "WHISTLE_TEST_", 1): v for k, v in TEST_ENV.items()
                   if k != "WHISTLE_LOG_LEVEL"})

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "freeswitch"  # provenance: its SOURCES.md


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The real FreeSWITCH captures, kept in the repository (a missing dir is an error)."""
    if not FIXTURES.is_dir():
        raise FileNotFoundError(f"FreeSWITCH captures missing: {FIXTURES}")
    return FIXTURES


@pytest.fixture(scope="session")
def clean_services() -> None:
    """Empty test databases, Redis test db and whapp queues once per test session."""
    from tests import support

    support.reset_services()


@pytest.fixture(scope="session")
def whapp_worker(clean_services: None):  # noqa: ANN201
    """One Celery worker serving the registrar and maintenance for the whole session (the
    router and call-control whapps have their own, so bridge tests can answer routes)."""
    from tests import support

    worker = support.start_worker("registrar,maintenance", name="whapps", pool="threads",
                                  concurrency=8)  # log: test-output/whapps.log
    yield worker
    worker.stop()


@pytest.fixture()
def client():  # noqa: ANN201
    from tests import support

    c = support.Client()
    yield c
    c.close()


@pytest.fixture(scope="module")
def standin():  # noqa: ANN201
    """A FreeSWITCH stand-in at the event-socket wire (tests/esl_standin.py)."""
    from tests.esl_standin import EslStandIn

    server = EslStandIn(password="ClueCon", hostname="fs-test-1").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bridge(request: pytest.FixtureRequest, standin):  # noqa: ANN001, ANN201
    """A bridge process for the module; the module's ``BRIDGE_ENV`` dict adds settings."""
    from tests import bridgekit

    env = getattr(request.module, "BRIDGE_ENV", {})
    proc, port = bridgekit.start_bridge(standin, **env)
    standin.wait_for_connections(1, timeout=10)
    yield {"port": port, "proc": proc}
    proc.stop()
    assert "Traceback" not in proc.output(), proc.output()[-3000:]


@pytest.fixture()
def realm() -> str:
    """A new account with a realm of its own."""
    from tests import support
    from whistle_tasks.ops import provisioning

    name = f"{support.unique('r')}.example.com"
    provisioning.create_account("Test", name)
    return name


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """An isolated session removes its own vhost and databases."""
    if not _ISOLATE:
        return
    import requests

    base = TEST_ENV["WHISTLE_COUCH_URL"].rstrip("/")
    try:
        for name in requests.get(f"{base}/_all_dbs", timeout=10).json():
            if name.startswith(TEST_ENV["WHISTLE_COUCH_PREFIX"]):
                requests.delete(f"{base}/{requests.utils.quote(name, safe='')}", timeout=30)
    except requests.RequestException:
        pass
    subprocess.run(["rabbitmqctl", "delete_vhost", _SESSION], capture_output=True, check=False)
