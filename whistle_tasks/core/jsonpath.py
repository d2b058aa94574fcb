"""Paths into decoded JSON (the seed's ``wh_json``): read, write and delete nested values.

A path is one key or a list/tuple of keys. A string step looks a key up in an object
(``dict``); an integer step indexes an array (``list``), 0-based, negative from the end as
in Python (``wh_json`` was 1-based, being Erlang). ``"a.b"`` is one key, not two: keys in
our messages contain dots (realms, IPs), so dotted paths would be ambiguous.

Reading never raises: a missing key, an index out of range or a step into the wrong type
(a key into a string, an index into an object) gives the default, because the documents
and messages we read come from outside and a malformed one must not crash a handler.
Writing raises ``TypeError``/``IndexError`` naming the failing step, since a write that
cannot be done is a programming error.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Path = str | int | list[str | int] | tuple[str | int, ...]

_MISSING = object()


def _steps(path: Path) -> list[str | int]:
    if isinstance(path, list | tuple):
        return list(path)
    return [path]


def _is_index(step: object) -> bool:
    # bool is an int subclass; True is no index.
    return isinstance(step, int) and not isinstance(step, bool)


def _child(node: object, step: str | int) -> Any:
    """``node[step]`` or ``_MISSING`` (missing, out of range or wrong type)."""
    if isinstance(node, dict):
        if _is_index(step):  # integers index arrays only (JSON keys are strings)
            return _MISSING
        try:
            return node.get(step, _MISSING)
        except TypeError:  # unhashable step
            return _MISSING
    if isinstance(node, list) and _is_index(step):
        if -len(node) <= step < len(node):
            return node[step]
    return _MISSING


def get_value(path: Path, obj: object, default: Any = None) -> Any:
    """The value at ``path`` in ``obj``, or ``default`` if any step is missing.

    ``get_value(["sip", "password"], device)``; ``get_value(["routes", 0, "uri"], msg)``.
    A value that is present but ``None`` (JSON ``null``) is returned as ``None``.
    """
    node: Any = obj
    for step in _steps(path):
        node = _child(node, step)
        if node is _MISSING:
            return default
    return node


def get_first_defined(paths: Iterable[Path], obj: object, default: Any = None) -> Any:
    """The value of the first path that is present and not ``None``, else ``default``.

    For fields that moved between versions or have fallbacks:
    ``get_first_defined(["Caller-ID-Name", ["Custom-Channel-Vars", "Caller-Name"]], msg)``.
    """
    for path in paths:
        value = get_value(path, obj, _MISSING)
        if value is not _MISSING and value is not None:
            return value
    return default


def set_value(path: Path, value: Any, obj: dict | list) -> dict | list:
    """Set ``value`` at ``path`` in ``obj``, creating missing objects on the way.

    Mutates and returns ``obj``. Before a key step, a missing value or one of another
    type (a string, a number, an array) becomes a new ``dict``, as ``wh_json`` did.
    Arrays are never invented: an integer step needs an array to be there already, and
    replaces an element (negative counts from the end) or appends when it equals the
    array's length; anything else raises ``TypeError``/``IndexError`` naming the step.
    A failing write may leave the objects it created before the failing step.
    """
    steps = _steps(path)
    if not steps:
        raise ValueError("set_value needs a non-empty path")
    node: Any = obj
    for depth, step in enumerate(steps):
        if _is_index(step):
            if not isinstance(node, list):
                raise TypeError(f"step {depth} ({step}) indexes an array, but the value there "
                                f"is a {type(node).__name__}")
            if step == len(node):
                node.append(None)
            elif not -len(node) <= step < len(node):
                raise IndexError(f"step {depth} ({step}) is out of range for an array of "
                                 f"{len(node)}")
        elif not isinstance(node, dict):
            raise TypeError(f"step {depth} ({step!r}) is a key, but the value there is a "
                            f"{type(node).__name__}")
        if depth == len(steps) - 1:
            node[step] = value
            break
        child = node[step] if _is_index(step) else node.get(step)
        if not _is_index(steps[depth + 1]) and not isinstance(child, dict):
            child = node[step] = {}
        node = child
    return obj


def delete_key(path: Path, obj: dict | list, prune: bool = False) -> dict | list:
    """Remove the value at ``path`` from ``obj`` (mutated and returned).

    A missing path is no error (``obj`` comes back unchanged). With ``prune=False`` the
    parents emptied by the removal stay (``{"a": {}}``); with ``prune=True`` every parent
    left empty is removed too, up to (not including) ``obj``.
    """
    steps = _steps(path)
    if not steps:
        return obj
    chain: list[tuple[Any, str | int]] = []  # (container, step into it)
    node: Any = obj
    for step in steps[:-1]:
        child = _child(node, step)
        if not isinstance(child, dict | list):
            return obj
        chain.append((node, step))
        node = child
    if _child(node, steps[-1]) is _MISSING:
        return obj
    del node[steps[-1]]
    if prune:
        for parent, step in reversed(chain):
            if parent[step]:
                break
            del parent[step]
    return obj
