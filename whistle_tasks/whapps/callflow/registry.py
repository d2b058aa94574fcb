"""The one registry of what a callflow can run: modules, and call apps (modules with no data).

A **module** is a function ``fn(call, data, context) -> outcome``: it drives the call with
the :class:`~whistle_tasks.whapps.callflow.call.Call` API, reads its node's ``data`` (already
validated against its declaration) and returns the *outcome* whose child runs next (``None``:
the callflow ends there; the outcome has no child: the ``_`` child runs, else it ends)::

    from schemas.base import obj
    from whistle_tasks.whapps.callflow import module

    @module("greet", data=obj("greet data", required=("media",)), outcomes=("played",))
    def greet(call, data, context):
        call.answer()
        call.play(data["media"])
        return "played"

Built-in modules are declared in :mod:`schemas.callflow` and register with only their name
(``@module("menu")``). A **call app** (``@call_app("attendant")``, a function of the call
alone) is a module with no data that goes on to its ``_`` child: ``app:NAME`` numbers are
one-node callflows running it. Modules of an operator's own packages are loaded from
``WHISTLE_CALLFLOW_MODULES``.

This module imports nothing heavy (no gevent, no Celery): the CLI loads it to validate
callflows.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from schemas import callflow as cf
from schemas.base import ObjectSpec
from whistle_tasks.core.log import get_logger

log = get_logger(__name__)

ModuleFn = Callable[[Any, dict[str, Any], Any], Any]
CallApp = Callable[[Any], Any]

#: the modules that ship with Whistle (imported by :func:`load_builtin`)
BUILTIN = (
    "whistle_tasks.whapps.callflow.modules.media",
    "whistle_tasks.whapps.callflow.modules.control",
    "whistle_tasks.whapps.callflow.modules.menu",
    "whistle_tasks.whapps.callflow.modules.ringing",
    "whistle_tasks.whapps.callflow.modules.temporal",
    "whistle_tasks.whapps.callflow.modules.rooms",
    "whistle_tasks.whapps.callflow.apps.attendant",
    "whistle_tasks.whapps.callflow.modules.voicemail",
    "whistle_tasks.whapps.callflow.modules.caller_id",
)


@dataclass(frozen=True)
class Module:
    """A registered module: its function and its declaration."""

    name: str
    fn: ModuleFn
    spec: cf.ModuleSpec
    call_app: bool = False


_modules: dict[str, Module] = {}


def module(name: str, *, data: ObjectSpec | None = None,
           outcomes: Iterable[cf.Outcome] | Callable[[Any], Any] | None = None,
           waits: bool = False) -> Callable[[ModuleFn], ModuleFn]:
    """Register ``fn(call, data, context) -> outcome`` as the callflow module ``name``.

    ``data``: the declaration of its data (:func:`schemas.base.obj`); ``outcomes``: the
    child keys it may return besides ``_``; ``waits``: it waits for the caller (a menu),
    so a transfer loop through it is not endless. A built-in module gives only its name:
    its declaration is in :mod:`schemas.callflow`.
    """
    if data is None and outcomes is None:
        spec = cf.MODULES.get(name)
        if spec is None:
            raise ValueError(f"callflow module {name!r} has no declaration: give data= "
                             "and outcomes=, or declare it in schemas.callflow")
    else:
        found = outcomes if outcomes is None or callable(outcomes) else tuple(outcomes)
        spec = cf.ModuleSpec(name, data if data is not None else cf.APP_DATA,
                             found if found is not None else (), waits=waits)

    def register(fn: ModuleFn) -> ModuleFn:
        _add(Module(name, fn, spec))
        return fn

    return register


def call_app(name: str) -> Callable[[CallApp], CallApp]:
    """Register ``fn(call)`` as the call app ``name`` (a module with no data)::

        @call_app("attendant")
        def attendant(call): ...
    """
    def register(fn: CallApp) -> CallApp:
        def run(call: Any, data: dict[str, Any], context: Any) -> str:  # noqa: ANN401
            fn(call)
            return cf.DEFAULT

        run.__name__ = getattr(fn, "__name__", name)
        run.__wrapped__ = fn  # type: ignore[attr-defined]
        _add(Module(name, run, cf.call_app_spec(name), call_app=True))
        return fn

    return register


def _add(entry: Module) -> None:
    existing = _modules.get(entry.name)
    if existing is not None and _original(existing.fn) is not _original(entry.fn):
        raise ValueError(f"callflow module {entry.name!r} is registered twice")
    cf.declare(entry.spec)
    _modules[entry.name] = entry


def _original(fn: Callable[..., Any]) -> Any:  # noqa: ANN401
    return getattr(fn, "__wrapped__", fn)


def get(name: str) -> Module | None:
    return _modules.get(name)


def names() -> list[str]:
    return sorted(_modules)


def specs() -> dict[str, cf.ModuleSpec]:
    """The declarations of every registered module (what a callflow may name)."""
    return {name: entry.spec for name, entry in _modules.items()}


def load(modules: str | Iterable[str]) -> list[str]:
    """Import the Python modules that define callflow modules or call apps
    (``WHISTLE_CALLFLOW_MODULES``: comma-separated); returns those that failed."""
    if isinstance(modules, str):
        modules = modules.split(",")
    failed = []
    for path in filter(None, (m.strip() for m in modules)):
        try:
            importlib.import_module(path)
        except ImportError as exc:
            log.error("callflow module package %s could not be loaded: %s", path, exc)
            failed.append(path)
    return failed


def load_all(extra: str = "") -> list[str]:
    """The built-in modules, then ``extra`` (the operator's); returns those that failed."""
    return load(BUILTIN) + load(extra)
