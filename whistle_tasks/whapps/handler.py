"""What every whapp handler shares: the calling convention, validation, replies, error counts.

The calling convention (the wire contract the bridge relies on): a handler serves one
request kind, named by its contract (:mod:`schemas.contracts`): it is the Celery task the
contract names (``registrar.authn_req``) taking ONE positional argument, the API message as
a dict. Requests arrive on ``callmgr`` with the contract's routing key; when the request has
a ``Server-ID``, the answer (an API message with the request's ``Msg-ID``) is published to
``targeted`` with that key::

    @handler(contracts.AUTHN)
    def authn_req(msg: dict) -> None:
        ...
        reply(msg, "authn_resp", {...})

A message that fails validation is logged with the reason, counted, answered with a
generic ``error`` message when it has a ``Server-ID`` (so the requester stops waiting at
once) and acknowledged: it is never redelivered forever.
"""

from __future__ import annotations

import collections
import functools
import threading
from collections.abc import Callable
from typing import Any

from kombu import Exchange

import schemas
from schemas.contract import Contract
from whistle_tasks.celery import app
from whistle_tasks.core import amqp
from whistle_tasks.core.config import settings
from whistle_tasks.core.log import call_id, get_logger

log = get_logger(__name__)

#: per-process counters: "<task>.rejected", "<task>.failed", "<task>.ok"
counters: collections.Counter[str] = collections.Counter()
_counter_lock = threading.Lock()


def count(name: str, n: int = 1) -> None:
    with _counter_lock:
        counters[name] += n


_publisher = amqp.Publisher(settings.amqp_url)


def publish(msg: dict[str, Any], exchange: Exchange, key: str, *, persistent: bool = False) -> None:
    """Publish an API message from inside a worker (one lean connection per process)."""
    _publisher.publish_api(msg, exchange, key, persistent=persistent)


def send(contract: Contract, msg: dict[str, Any], *, to: str | None = None) -> bool:
    """Send a request from inside a worker, where its contract says."""
    _publisher.send(contract, msg, to=to)
    return True


def reply(request: dict[str, Any], name: str, data: dict[str, Any],
          app_name: str = "whistle") -> dict[str, Any] | None:
    """Answer ``request`` with the message ``name``, built from ``data``.

    ``Msg-ID`` and ``Call-ID`` are echoed; the answer goes to ``targeted`` with the
    request's ``Server-ID`` as key. Without a ``Server-ID`` nothing is sent. Returns the
    answer that was sent.
    """
    server_id = request.get("Server-ID")
    if not server_id:
        return None
    headers = {"Msg-ID": request.get("Msg-ID"), "App-Name": app_name, "Node": settings.node}
    if request.get("Call-ID"):
        headers["Call-ID"] = request["Call-ID"]
    answer = schemas.build(name, {**data, **headers})
    publish(answer, amqp.TARGETED, server_id)
    return answer


def reply_error(request: dict[str, Any], message: str, app_name: str = "whistle") -> None:
    """The generic ``error`` answer (docs/api.md), for a request that cannot be served."""
    if isinstance(request, dict) and request.get("Server-ID") and request.get("Msg-ID"):
        reply(request, "error", {"Error-Message": message,
                                 "Request": str(request.get("Event-Name", ""))}, app_name)


def handler(contract: Contract, *, to: str | None = None,
            **task_options: Any) -> Callable[[Callable[[dict[str, Any]], Any]], Any]:  # noqa: ANN401
    """Declare the handler of the requests of ``contract``: the Celery task it names
    (``to``: the whapp of a targeted contract, e.g. ``callflow`` for ``route_win``).

    The message is validated as the contract's request before the function runs, every
    log line inside is tagged with its ``Call-ID``, and a bad message never reaches the
    function (see the module docstring). ``bind=True`` in ``task_options`` passes the
    task as first argument (for ``self.retry``).
    """
    name = contract.address({}, to)[2] if to else contract.task
    if not name:
        raise ValueError(f"contract {contract.name!r} names no task")
    whapp = name.split(".", 1)[0]
    bind = task_options.pop("bind", False)

    def decorate(fn: Callable[..., Any]) -> Any:  # noqa: ANN401
        options = {"acks_late": True, "ignore_result": True, **task_options}

        @app.task(name=name, bind=True, **options)
        @functools.wraps(fn)
        def task(self: Any, msg: Any = None, *extra: Any, **kwargs: Any) -> Any:  # noqa: ANN401
            if extra or kwargs or not isinstance(msg, dict):
                count(f"{name}.rejected")
                log.error("%s rejected: expected one API message (a JSON object), got %s",
                          name, _describe(msg, extra, kwargs))
                return None
            with call_id(msg.get("Call-ID")):
                try:
                    contract.check_request(msg)
                except schemas.MessageError as exc:
                    count(f"{name}.rejected")
                    log.error("%s rejected: %s (Msg-ID %s)", name, exc, msg.get("Msg-ID"))
                    reply_error(msg, f"invalid {contract.request}: {exc}", whapp)
                    return None
                result = fn(self, msg) if bind else fn(msg)
                count(f"{name}.ok")
                return result

        return task

    return decorate


def _describe(msg: Any, extra: tuple, kwargs: dict) -> str:  # noqa: ANN401
    kind = type(msg).__name__
    return f"{kind} and {len(extra)} more positional, {len(kwargs)} keyword arguments"
