"""The Celery app of Whistle: queues (one per whapp), their bindings, beat, worker start-up.

``celery -A whistle_tasks worker -Q registrar`` runs the registrar; every whapp has its own
queue, bound on ``callmgr`` to the keys of the requests it serves (their contracts,
:mod:`schemas.contracts`) and to ``whapp.<name>`` for its internal tasks (beat, admin). A
whapp is scaled by starting more workers on its queue, and sharded by realm by changing a
binding (``authn.req.*`` → ``authn.req.example%2Ecom``).

Importing this module builds the app but starts nothing and imports no ``celery.worker``:
what only a worker needs is done in the worker's own signals.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Celery, bootsteps, signals
from kombu import Consumer, Queue

from schemas.keys import whapp_key
from whistle_tasks.core import amqp, log
from whistle_tasks.core.amqp import WHAPP_BINDINGS, whapp_queue
from whistle_tasks.core.config import settings

TASK_MODULES = [
    "whistle_tasks.whapps.registrar.tasks",
    "whistle_tasks.whapps.router.tasks",
    "whistle_tasks.whapps.callflow.tasks",
    "whistle_tasks.whapps.callflow.mwi",
    "whistle_tasks.whapps.maintenance.tasks",
    "whistle_tasks.whapps.cdr.tasks",
    "whistle_tasks.whapps.notify.tasks",
]
#: worker bootsteps of whapps, by name (a worker imports them as it starts)
WORKER_STEPS = [
    "whistle_tasks.whapps.cdr.consumer:HangupConsumerStep",  # the hangup events → CDRs
]


def _no_stall_quick_drain() -> None:
    """Work around a Celery 5.x stall in gevent workers (measured: +100 ms per task).

    ``synloop`` (the loop of gevent/eventlet workers) drains the event dispatcher's
    connection with a blocking 0.1 s ``drain_events`` after every frame it handles, to
    consume broker heartbeats. That connection almost never has anything to read, so every
    task waits 100 ms before the next one is even received: a sequential authn_req took
    101 ms p50 instead of 2.5 ms. Draining with timeout 0 still consumes any heartbeat that
    is there, without waiting for one.
    """
    from celery.worker import loops

    blocking = loops._quick_drain
    if getattr(blocking, "whistle_patched", False):
        return

    def quick_drain(connection: Any, timeout: float = 0.1) -> None:  # noqa: ANN401
        blocking(connection, timeout=0)

    quick_drain.whistle_patched = True  # type: ignore[attr-defined]
    loops._quick_drain = quick_drain


@signals.worker_init.connect
def _patch_worker(**_: Any) -> None:
    """Only a worker loads ``celery.worker``: the patch waits for one to start."""
    _no_stall_quick_drain()

# fixups=[]: Celery's default Django fixup imports celery.worker even into a plain client
app = Celery("whistle", include=TASK_MODULES, fixups=[])
app.conf.update(
    broker_url=settings.amqp_url,
    broker_connection_retry_on_startup=True,
    broker_heartbeat=30,
    broker_pool_limit=20,
    task_serializer="json",
    accept_content=["json"],
    result_backend=None,
    task_ignore_result=True,
    task_acks_late=True,               # a worker that dies mid-task leaves the message to another
    task_reject_on_worker_lost=True,
    task_acks_on_failure_or_timeout=True,
    # After a lost broker connection Celery lowers the prefetch count, then raises it again
    # with basic.qos from the ack callbacks, which in a threads pool run in the pool's
    # threads, on the connection the consumer loop is reading. Measured (tests/test_faults.py:
    # connections closed while the registrar held unacked tasks): the worker reconnected,
    # then either processed nothing more (prefetch window full of unacked messages, a pool
    # thread waiting in basic.qos) or broke the stream (UnexpectedFrame) and reconnected
    # again. Without the reduction the new consumer starts at the full count, no basic.qos
    # leaves a pool thread, and a reconnected worker carries on at once.
    worker_enable_prefetch_count_reduction=False,
    worker_prefetch_multiplier=8,
    worker_hijack_root_logger=False,
    worker_redirect_stdouts=False,
    worker_send_task_events=settings.task_events,  # Flower's live view
    task_send_sent_event=False,
    task_queues=[whapp_queue(name) for name in WHAPP_BINDINGS],
    task_default_queue="maintenance",
    task_default_exchange=amqp.CALLMGR.name,
    task_default_exchange_type="topic",
    task_default_routing_key=whapp_key("maintenance"),
    task_routes=[
        lambda name, args, kwargs, options, task=None, **kw: _route_by_whapp(name),
    ],
    task_create_missing_queues=False,
    beat_schedule={
        "registrar-expire": {
            "task": "registrar.expire",
            "schedule": timedelta(seconds=settings.reg_expiry_interval),
        },
        **({"maintenance-compact": {
            "task": "maintenance.compact",
            "schedule": timedelta(seconds=settings.compact_interval),
        }} if settings.compact_interval > 0 else {}),
        **({"cdr-retention": {
            "task": "cdr.retention",
            "schedule": timedelta(hours=6),
        }} if settings.cdr_retention_months > 0 else {}),
        "cdr-sweep-calls": {
            "task": "cdr.sweep_calls",
            "schedule": timedelta(minutes=10),
        },
    },
    timezone="UTC",
)


def consumed_queues(consumer: Any) -> set[str]:  # noqa: ANN401
    """The queues a starting worker consumes (``worker_ready``'s sender)."""
    if consumer is None:
        return set()
    return {q.name for q in consumer.app.amqp.queues.consume_from.values()}


def _route_by_whapp(task_name: str) -> dict[str, Any] | None:
    """Internal tasks (``registrar.expire``) go to their whapp's queue via ``whapp.<name>``."""
    whapp = task_name.split(".", 1)[0]
    if whapp in WHAPP_BINDINGS:
        return {"exchange": amqp.CALLMGR.name, "exchange_type": "topic",
                "routing_key": whapp_key(whapp)}
    return None


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    log.setup(settings.log_level, settings.log_target)
    if settings.log_level.upper() != "DEBUG":
        # two INFO lines per task ("received", "succeeded") at a thousand tasks a second
        # cost more than the task; Flower shows every task from the events anyway
        import logging

        for name in ("celery.worker.strategy", "celery.app.trace"):
            logging.getLogger(name).setLevel(logging.WARNING)


@signals.worker_ready.connect
def _ensure_databases(**_: Any) -> None:
    """Every worker, as it starts: system databases exist, design documents up to date."""
    from whistle_tasks.core.couch import CouchError, get_couch

    try:
        changed = {k: v for k, v in get_couch().ensure_system().items() if v != "unchanged"}
        if changed:
            log.get_logger(__name__).info("design documents: %s", changed)
    except CouchError as exc:
        log.get_logger(__name__).error("could not prepare CouchDB: %s", exc)


class ConfigurationChanges(bootsteps.ConsumerStep):
    """Each worker hears the ``configuration`` broadcasts and drops what it cached.

    The consumer runs in the worker's own connection and event loop, so a change that
    reached the worker before a request is applied before that request is handled.
    """

    def get_consumers(self, channel: Any) -> list[Consumer]:  # noqa: ANN401
        queue = Queue("", exchange=amqp.CONFIGURATION, routing_key="doc.#",
                      exclusive=True, auto_delete=True, durable=False)
        return [Consumer(channel, queues=[queue], callbacks=[self.on_message],
                         accept=["json"], no_ack=True)]

    def on_message(self, body: Any, message: Any) -> None:  # noqa: ANN401
        from whistle_tasks.core import changes

        changes.apply(body)


app.steps["consumer"].add(ConfigurationChanges)
for _step in WORKER_STEPS:
    app.steps["worker"].add(_step)
