"""The callflow engine: run a tree of modules on a call, one node at a time.

Each node's module gets the call, the node's ``data`` and the call's
:class:`~whistle_tasks.whapps.callflow.context.Context`, and returns an outcome: the child
of that key runs next, else the ``_`` child, else the callflow ends. ``None`` ends it; a
:class:`~whistle_tasks.whapps.callflow.context.Goto` continues at another callflow's root
(``transfer``). Data is checked against the module's declaration before the module runs
(callflows are validated when saved, but a document may have been edited by hand since).

A call that hangs up raises :class:`~whistle_tasks.whapps.callflow.errors.Hangup` out of the
module's current command; it ends the run, and whoever called :func:`run` hangs up and
closes the call (the route_win task). A module that fails ends the run, logged with the
node's path.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Mapping
from typing import Any

from schemas import callflow as cf
from whistle_tasks.core.log import get_logger
from whistle_tasks.whapps.callflow import registry
from whistle_tasks.whapps.callflow.context import Context, Goto
from whistle_tasks.whapps.callflow.errors import CallError

log = get_logger(__name__)

#: nodes one call may run in all (transfers and menus included): a runaway stops here
MAX_STEPS = 250

#: why a run ended when the callflow could not be run as written (the caller gets a 503
#: when it had not been answered)
FAILURES = ("too many steps", "unknown module", "invalid data", "failed")

#: per-process counters: "nodes", "<module>", "ended.<why>", "errors.<why>"
counters: collections.Counter[str] = collections.Counter()
_lock = threading.Lock()


def count(name: str) -> None:
    with _lock:
        counters[name] += 1


def run(call: Any, flow: Mapping[str, Any], context: Context) -> str:  # noqa: ANN401
    """Run ``flow`` (a root node) on ``call``; returns why it ended (``done``,
    ``no child for 'busy'``...). Raises the call's :class:`CallError` (a hangup)."""
    node: Mapping[str, Any] | None = flow
    path = "flow"
    while node is not None:
        context.steps += 1
        if context.steps > MAX_STEPS:
            log.error("%s: more than %d nodes run on one call; stopping", path, MAX_STEPS)
            count("errors.steps")
            return "too many steps"
        name = str(node.get("module"))
        entry = registry.get(name)
        if entry is None:
            log.error("%s: unknown module %r (known: %s)", path, name, registry.names())
            count("errors.unknown_module")
            return f"unknown module {name}"
        data = node.get("data") or {}
        problems = cf.data_errors(entry.spec, data) if isinstance(data, dict) else \
            {"": ["data is not an object"]}
        if problems:
            log.error("%s: %s data is invalid: %s", path, name, "; ".join(
                f"{k}: {', '.join(v)}" for k, v in problems.items()))
            count("errors.data")
            return "invalid data"
        children = node.get("children") or {}
        context.children = frozenset(children)
        context.path = path
        count("nodes")
        count(name)
        log.info("%s: %s", path, name)
        try:
            outcome = entry.fn(call, dict(data), context)
        except CallError:
            raise
        except Exception:
            log.exception("%s: module %s failed", path, name)
            count("errors.module")
            return f"{name} failed"
        if isinstance(outcome, Goto):
            log.info("%s: continues at callflow %s (%s)", path, outcome.callflow_id,
                     outcome.number)
            context.callflow_id, context.number = outcome.callflow_id, outcome.number
            context.captures = outcome.captures
            node, path = outcome.flow, f"{outcome.callflow_id}:flow"
            continue
        if outcome is None:
            return "done"
        outcome = str(outcome)
        key = outcome if outcome in children else cf.DEFAULT
        child = children.get(key)
        if child is None:
            log.info("%s: %s returned %r and has no child for it: the callflow ends",
                     path, name, outcome)
            return f"no child for {outcome!r}"
        node, path = child, f"{path}.children.{key}"
    return "done"
