"""The caller id options shared by ``whistle device create|update``, ``account update`` and
``user create|set`` (what they set: :mod:`schemas.caller_id`; the rule that applies them:
:mod:`whistle_tasks.data.caller_id`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import click

from schemas import caller_id as cid

F = Callable[..., Any]

OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--caller-id-name",), {"help": "Internal caller id name (same as --internal-name)."}),
    (("--caller-id-number",), {"help": "Internal caller id number (same as "
                                       "--internal-number)."}),
    (("--internal-name",), {"help": "Caller id name on calls inside the account."}),
    (("--internal-number",), {"help": "Caller id number on calls inside the account."}),
    (("--external-name",), {"help": "Caller id name on calls out through gateways."}),
    (("--external-number",), {"help": "Caller id number on calls out through gateways "
                                      "(what carriers see)."}),
    (("--outbound-privacy",), {"type": click.Choice(cid.PRIVACY),
                               "help": "Hide the caller id on calls out: name, number, "
                                       "full or none."}),
    (("--lock-external/--no-lock-external",), {"default": None,
                                               "help": "Only the configured external id may "
                                                       "leave (calls without one: 403)."}),
)
NAMES = ("caller_id_name", "caller_id_number", "internal_name", "internal_number",
         "external_name", "external_number", "outbound_privacy", "lock_external")


def options(fn: F) -> F:
    """Add the caller id options to a command (they arrive as keyword arguments)."""
    for decls, attrs in reversed(OPTIONS):
        fn = click.option(*decls, **attrs)(fn)
    return fn


def changes(values: Mapping[str, Any]) -> dict[str, Any]:
    """``caller_id`` / ``caller_id_options`` changes from the options given (empty: none);
    an empty string removes a field on update."""
    internal = {"name": values.get("internal_name") if values.get("internal_name") is not None
                else values.get("caller_id_name"),
                "number": values.get("internal_number")
                if values.get("internal_number") is not None
                else values.get("caller_id_number")}
    external = {"name": values.get("external_name"), "number": values.get("external_number")}
    ids = {kind: {k: v for k, v in pair.items() if v is not None}
           for kind, pair in (("internal", internal), ("external", external))}
    out: dict[str, Any] = {}
    ids = {kind: pair for kind, pair in ids.items() if pair}
    if ids:
        out["caller_id"] = ids
    opts = {k: values[k] for k in ("outbound_privacy", "lock_external")
            if values.get(k) is not None}
    if opts:
        out["caller_id_options"] = opts
    return out


def pop(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the caller id options out of a command's ``kwargs``; their changes."""
    return changes({name: kwargs.pop(name, None) for name in NAMES})


def shown(doc: Mapping[str, Any]) -> str:
    """A document's caller id in one cell: ``int: Name <number>; ext: ...; privacy``."""
    parts = []
    for kind, label in (("internal", "int"), ("external", "ext")):
        pair = cid.normalize(doc.get("caller_id")).get(kind)
        if pair:
            text = " ".join(filter(None, (pair.get("name"),
                                          f"<{pair['number']}>" if pair.get("number") else "")))
            parts.append(f"{label}: {text}")
    opts = cid.normalize_options(doc.get("caller_id_options"))
    if opts.get("outbound_privacy", "none") != "none":
        parts.append(f"privacy {opts['outbound_privacy']}")
    if opts.get("lock_external"):
        parts.append("locked")
    return "; ".join(parts)
