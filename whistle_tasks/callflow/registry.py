"""Which function answers a call routed to a whapp name (``whistle number add N --to app:NAME``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from whistle_tasks.util.log import get_logger

log = get_logger(__name__)

WhappFunction = Callable[[Any], Any]
_whapps: dict[str, WhappFunction] = {}


def whapp(name: str) -> Callable[[WhappFunction], WhappFunction]:
    """Register ``fn(call)`` as the whapp ``name``::

        @whapp("attendant")
        def attendant(call): ...
    """
    def register(fn: WhappFunction) -> WhappFunction:
        if name in _whapps and _whapps[name] is not fn:
            raise ValueError(f"whapp {name!r} is registered twice")
        _whapps[name] = fn
        return fn

    return register


def get(name: str) -> WhappFunction | None:
    return _whapps.get(name)


def names() -> list[str]:
    return sorted(_whapps)


def load(modules: str) -> None:
    """Import the modules that define whapps (``WHISTLE_WHAPP_MODULES``, comma-separated)."""
    for module in filter(None, (m.strip() for m in modules.split(","))):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            log.error("whapp module %s could not be loaded: %s", module, exc)
