"""Call apps: which Python function drives a call routed to ``app:NAME``.

A call app is a function of a :class:`~whistle_tasks.whapps.callflow.call.Call`, registered
under a name with :func:`call_app`; ``whistle number add N --to app:NAME`` routes a number
to it. (A *whapp* is an application with its own queue: the callflow whapp runs call apps.)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

CallApp = Callable[[Any], Any]
_apps: dict[str, CallApp] = {}


def call_app(name: str) -> Callable[[CallApp], CallApp]:
    """Register ``fn(call)`` as the call app ``name``::

        @call_app("attendant")
        def attendant(call): ...
    """
    def register(fn: CallApp) -> CallApp:
        if name in _apps and _apps[name] is not fn:
            raise ValueError(f"call app {name!r} is registered twice")
        _apps[name] = fn
        return fn

    return register


def get(name: str) -> CallApp | None:
    return _apps.get(name)


def names() -> list[str]:
    return sorted(_apps)


def load(modules: str) -> None:
    """Import the modules that define call apps (``WHISTLE_WHAPP_MODULES``, comma-separated)."""
    for module in filter(None, (m.strip() for m in modules.split(","))):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            log.error("call app module %s could not be loaded: %s", module, exc)
