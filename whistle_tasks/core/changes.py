"""Document-change broadcasts: a changed device or account is dropped from every cache at once.

Whoever changes a document (the CLI, an import, a whapp) deletes the shared Redis entries it
knows about and then calls :func:`broadcast`: a ``conf_change`` message (``configuration``
exchange, key ``doc.<action>.<type>.<realm>.<id>``) that every worker
(:class:`whistle_tasks.celery.ConfigurationChanges`) and every bridge hears. Each listener
drops what it cached from that document in its own process. The publish is confirmed by
RabbitMQ before :func:`broadcast` returns, so once the CLI has exited, every listener
already has the message queued ahead of any later request.

Listeners register with :func:`on_change`::

    @on_change("device")
    def _forget(change: dict) -> None:
        credentials.delete_local(key(change["Realm"], change["Username"]))
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import schemas
from schemas.keys import conf_change_key
from whistle_tasks.core import amqp
from whistle_tasks.core.config import settings
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

Listener = Callable[[dict[str, Any]], None]
_listeners: dict[str, list[Listener]] = defaultdict(list)


def on_change(*doc_types: str) -> Callable[[Listener], Listener]:
    """Register a listener for changes of ``doc_types`` (``"*"``: every type)."""

    def register(fn: Listener) -> Listener:
        for doc_type in doc_types or ("*",):
            if fn not in _listeners[doc_type]:
                _listeners[doc_type].append(fn)
        return fn

    return register


def apply(msg: Any) -> int:  # noqa: ANN401
    """Run the listeners of one received change; returns how many ran. Never raises."""
    try:
        change = amqp.decode_api(msg) if not isinstance(msg, dict) else msg
        schemas.validate(change)
        if change.get("Event-Category") != "configuration":
            raise schemas.MessageError("conf_change", {"Event-Category": ["not configuration"]})
    except (ValueError, TypeError) as exc:
        log.error("configuration change rejected: %s", exc)
        return 0
    ran = 0
    for fn in _listeners.get(change["Type"], []) + _listeners.get("*", []):
        try:
            fn(change)
            ran += 1
        except Exception:
            log.exception("change listener %s failed", getattr(fn, "__name__", fn))
    return ran


def build(action: str, doc_type: str, doc_id: str, *, realm: str | None = None,
          username: str | None = None, account_id: str | None = None,
          database: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"Type": doc_type, "ID": doc_id}
    for name, value in (("Realm", realm), ("Username", username),
                        ("Account-ID", account_id), ("Database", database)):
        if value:
            data[name] = value
    return schemas.build(f"doc_{action}", data, **{"App-Name": "whistle"})


_publisher: amqp.Publisher | None = None


def broadcast(action: str, doc_type: str, doc_id: str, *, realm: str | None = None,
              username: str | None = None, account_id: str | None = None,
              database: str | None = None) -> dict[str, Any]:
    """Tell every bridge and worker that a document was created, edited or deleted.

    ``action`` is ``created``, ``edited`` or ``deleted``. Published on the process's
    confirming connection: when this returns, RabbitMQ has the change.
    """
    global _publisher
    msg = build(action, doc_type, doc_id, realm=realm, username=username,
                account_id=account_id, database=database)
    if _publisher is None:
        _publisher = amqp.Publisher(settings.amqp_url, confirm=True)
    _publisher.publish_api(msg, amqp.CONFIGURATION, conf_change_key(action, doc_type,
                                                                     realm or "", doc_id))
    return msg
