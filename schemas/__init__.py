"""The Whistle API: every message type, declared as data and compiled to marshmallow.

::

    import schemas
    msg = schemas.build("authn_resp", {"Auth-Method": "password", "Auth-Password": pw},
                        server_id=..., app_name="registrar")
    schemas.validate(msg)            # the type is read from the message's own headers
    schemas.validate_as("authn_req", incoming)
    spec = schemas.lookup("call", "command", "play")   # or schemas.get("play")

Every failure is a :class:`MessageError` (a ``ValueError``) naming the message and every
bad field. One module per message family; :mod:`schemas.base` holds the machinery.
"""

from __future__ import annotations

from typing import Any

from schemas import (
    authn,
    call_event,
    call_manage,
    command,
    configuration,
    error,
    notification,
    presence,
    registration,
    resource,
    route,
)
from schemas.base import (
    DEFAULT_OPTIONAL,
    DEFAULT_REQUIRED,
    REGISTRY,
    MessageError,
    MessageSpec,
    ObjectSpec,
    UnknownMessage,
)

for _family in (authn, route, registration, call_event, command, resource, error, configuration,
                call_manage, presence, notification):
    REGISTRY.register(*_family.MESSAGES)


def build(name: str, data: dict, **headers: Any) -> dict:
    """A new, valid message of type ``name`` from ``data``.

    Fills ``Event-Category`` / ``Event-Name`` (and ``Application-Name`` for commands),
    ``Msg-ID`` (``uuid4().hex``) unless given, ``App-Name`` (``whistle``), ``App-Version``
    (the package's) and ``Node`` (``settings.node``) unless given. ``headers`` are wire
    names or their snake_case (``server_id=`` → ``Server-ID``) and win over ``data``.
    Keeps only the default, required and optional fields of the type (also inside
    nested objects), drops ``None`` values. Raises :class:`MessageError`.
    """
    return REGISTRY.get(name).build(data, **headers)


def validate(msg: dict) -> dict:
    """Check ``msg`` against the type its own headers name; return it unchanged.

    Unknown extra fields are allowed. Raises :class:`MessageError` naming the message
    and every bad field (missing, value not allowed, wrong kind, unknown type).
    """
    return REGISTRY.validate(msg)


def validate_as(name: str, msg: dict) -> dict:
    """As :func:`validate`, with the type chosen by name."""
    return REGISTRY.get(name).validate(msg)


def lookup(category: str, event_name: str, application_name: str | None = None) -> MessageSpec:
    """The type of (Event-Category, Event-Name), and Application-Name for commands."""
    return REGISTRY.lookup(category, event_name, application_name)


def get(name: str) -> MessageSpec:
    """The type named ``name`` (``authn_req``, ``play``...); :class:`UnknownMessage` if none."""
    return REGISTRY.get(name)


def names() -> list[str]:
    """Every message name known."""
    return REGISTRY.names()


__all__ = [
    "DEFAULT_OPTIONAL",
    "DEFAULT_REQUIRED",
    "MessageError",
    "MessageSpec",
    "ObjectSpec",
    "UnknownMessage",
    "build",
    "get",
    "lookup",
    "names",
    "validate",
    "validate_as",
]
