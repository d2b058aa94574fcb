"""The machinery every message family shares: declarations, builder, validator, registry.

A message type is declared as data, in the spirit of Kazoo's ``kapi_*`` modules: its
required fields, its optional fields, the values some fields may take and the kind of
each field (text when not said)::

    AUTHN_RESP = message(
        "authn_resp", "directory",
        required=("Auth-Method", "Auth-Password"),
        optional=("Custom-Channel-Vars", ...),
        values={"Auth-Method": ("password", "ip", "a1-hash", "error")},
        types={"Custom-Channel-Vars": SCALARS},
    )

:func:`message` adds the default headers every message carries and compiles the whole
into a marshmallow schema, once, at import. Validation then runs a fast path first (all
required fields present and every present field acceptable to its kind: a few dict
look-ups per field), because the bridge and the registrar validate every authn_req on
the hot path; only a refused message goes through marshmallow, to say precisely what is
wrong with every field at once. Both paths use the same kinds, so they cannot disagree.

The builder keeps the default, required and optional fields of the type (also inside
nested declared objects), drops everything else, fills the headers a sender should not
have to think about (``Msg-ID``, ``App-Name``, ``App-Version``, ``Node``, the event
names) and validates the result.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

from marshmallow import INCLUDE, Schema

from schemas.kinds import (
    BOOLEAN,
    OBJECT,
    TEXT,
    Kind,
    ListOf,
    OneOf,
    Text,
    WireField,
    json_type,
)

# --------------------------------------------------------------------------- defaults

DEFAULT_REQUIRED: tuple[str, ...] = ("App-Name", "App-Version", "Event-Category", "Event-Name",
                                     "Msg-ID")
DEFAULT_OPTIONAL: tuple[str, ...] = ("Server-ID", "Node", "Call-ID", "Account-ID",
                                     "Access-Group", "Tenant-ID", "Geo-Location",
                                     "Defer-Response", "Destination-Server", "Raw-Headers",
                                     "Msg-Reply-ID")
DEFAULT_TYPES: dict[str, Kind] = {"Defer-Response": BOOLEAN, "Raw-Headers": OBJECT}

DEFAULT_APP_NAME = "whistle"


def _package_version() -> str:
    try:
        return metadata.version("whistle")
    except metadata.PackageNotFoundError:
        return "0.1.0"


DEFAULT_APP_VERSION = _package_version()


_DEFAULT_NODE = [socket.gethostname()]


def set_default_node(node: str) -> None:
    """The ``Node`` of messages built without one (the settings object sets it from
    ``WHISTLE_NODE``)."""
    _DEFAULT_NODE[0] = node


def _default_node() -> str:
    return _DEFAULT_NODE[0]


def message_head(name: str, category: str, *, app_name: str, node: str | None = None,
            server_id: str | None = None) -> dict[str, Any]:
    """The default headers of a message built field by field on a hot path (the bridge's
    lookups and events), without :meth:`MessageSpec.build`'s pruning and validation: its
    maker validates the result itself, or its tests validate every message it makes."""
    msg = {"Event-Category": category, "Event-Name": name, "App-Name": app_name,
           "App-Version": DEFAULT_APP_VERSION, "Msg-ID": uuid.uuid4().hex,
           "Node": node or _DEFAULT_NODE[0]}
    if server_id:
        msg["Server-ID"] = server_id
    return msg


def is_secret(field: str) -> bool:
    """Fields whose values never appear in an error message (they reach logs)."""
    return field.endswith("Password")


# --------------------------------------------------------------------------- errors

ROOT = "_schema"  # the errors key of a problem with the message as a whole (marshmallow's)


class MessageError(ValueError):
    """A message that does not satisfy its declaration.

    ``message_name`` names the message type (``authn_req``; ``unknown`` when it could
    not be told), ``errors`` maps each bad field, as a dotted path for nested fields
    (``Routes.0.Invite-Format``), to its reasons. ``str()`` names the message and every
    bad field: ``authn_req: Auth-Realm: missing; Method: 'FOO' is not one of [...]``.
    """

    def __init__(self, message_name: str, errors: Mapping[str, Iterable[str]] | None = None
                 ) -> None:
        self.message_name = message_name
        self.errors: dict[str, list[str]] = {k: list(v) for k, v in (errors or {}).items()}
        # args = the constructor's arguments, so pickling (Celery) rebuilds the same error
        super().__init__(message_name, self.errors)

    def __str__(self) -> str:
        parts = [reason if path == ROOT else f"{path}: {reason}"
                 for path, reasons in self.errors.items() for reason in reasons]
        return f"{self.message_name}: {'; '.join(parts) or 'invalid'}"


class UnknownMessage(MessageError, KeyError):
    """No declaration for this name / category / event name (also a ``KeyError``)."""


def flatten_errors(errors: Any) -> dict[str, list[str]]:
    """marshmallow's nested error dict → ``{"Routes.0.Invite-Format": ["missing"]}``."""
    out: dict[str, list[str]] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            for key, sub in node.items():
                if key == ROOT:
                    walk(sub, path)
                else:
                    walk(sub, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list | tuple):
            for item in node:
                walk(item, path)
        else:
            out.setdefault(path or ROOT, []).append(str(node))

    walk(errors, "")
    return out


def _not_an_object(name: str, value: object) -> MessageError:
    return MessageError(name, {ROOT: [f"expected a JSON object, got {json_type(value)}"]})


# --------------------------------------------------------------------------- declarations


class ObjectSpec:
    """A declared JSON object, compiled: a message, or a nested object such as a route.

    ``required`` / ``optional`` are the type's own fields (as the API tables list them);
    ``fields`` is every field the type knows, in order; ``values`` the allowed values;
    ``kinds`` the kind of each field; ``schema`` the marshmallow schema (unknown fields
    are let through: validation never drops or renames anything).
    """

    def __init__(self, name: str, required: Iterable[str] = (), optional: Iterable[str] = (),
                 values: Mapping[str, Iterable[str]] | None = None,
                 types: Mapping[str, Kind] | None = None, *,
                 default_required: Iterable[str] = (), default_optional: Iterable[str] = (),
                 default_types: Mapping[str, Kind] | None = None) -> None:
        self.name = name
        self.required = tuple(required)
        self.optional = tuple(optional)
        self.values: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in (values or {}).items()}
        all_required = _unique((*default_required, *self.required))
        all_optional = tuple(f for f in _unique((*default_optional, *self.optional))
                             if f not in all_required)
        self.fields: tuple[str, ...] = all_required + all_optional
        self._all_required = all_required
        self._field_set = frozenset(self.fields)
        declared_types = {**(default_types or {}), **(types or {})}
        for key in (*self.values, *declared_types):
            if key not in self._field_set:
                raise ValueError(f"{name}: {key!r} has values or a type but is not a field")
        self.kinds: dict[str, Kind] = {f: _with_values(declared_types.get(f, TEXT),
                                                       self.values.get(f))
                                       for f in self.fields}
        self._required_set = frozenset(all_required)
        self._text_fields = frozenset(f for f, kind in self.kinds.items() if type(kind) is Text)
        self._checks = {f: kind.ok for f, kind in self.kinds.items() if f not in self._text_fields}
        self.schema: Schema = self._compile()

    def _compile(self) -> Schema:
        required = set(self._all_required)
        declared = {
            f: WireField(kind, secret=is_secret(f), required=f in required,
                         allow_none=f not in required,
                         error_messages={"required": "missing", "null": "missing"})
            for f, kind in self.kinds.items()
        }
        cls = Schema.from_dict(declared, name=_schema_name(self.name))
        return cls(unknown=INCLUDE)

    # -- validation

    def fast_ok(self, obj: dict) -> bool:
        """True when ``obj`` is valid; cheap, and agrees with ``schema`` by construction.

        Written for speed (the hot path validates every authn_req): one C-level subset
        test for the required fields, then one pass over the present fields, with plain
        text fields (most of them) checked inline rather than through their kind.
        """
        if not obj.keys() >= self._required_set:
            return False
        required = self._required_set
        text = self._text_fields
        checks = self._checks
        for key, value in obj.items():
            if value is None:
                if key in required:
                    return False
            elif key in text:
                if not isinstance(value, str):
                    return False
            else:
                check = checks.get(key)
                if check is not None and not check(value):
                    return False
        return True

    def explain(self, obj: dict) -> dict:
        """marshmallow's (nested) error dict for ``obj``; empty when it is valid."""
        return self.schema.validate(obj)

    def errors(self, obj: Any) -> dict[str, list[str]]:
        """Every problem of ``obj``, flattened to ``{path: [reasons]}`` (empty: valid)."""
        if not isinstance(obj, dict):
            return _not_an_object(self.name, obj).errors
        if self.fast_ok(obj):
            return {}
        return flatten_errors(self.explain(obj))

    def validate(self, obj: Any) -> dict:
        """Return ``obj`` itself when valid; raise :class:`MessageError` naming every problem."""
        if not isinstance(obj, dict):
            raise _not_an_object(self.name, obj)
        if self.fast_ok(obj):
            return obj
        errors = flatten_errors(self.explain(obj))
        if errors:
            raise MessageError(self.name, errors)
        return obj

    # -- building

    def prune(self, obj: Mapping) -> dict:
        """A copy with only the declared fields (also inside nested objects), no ``None``."""
        kinds = self.kinds
        return {k: kinds[k].prune(v) for k, v in obj.items()
                if v is not None and k in self._field_set}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class MessageSpec(ObjectSpec):
    """A message type: an object with the default headers and its event names.

    ``event_name`` is a string, a frozenset of names (call events), or ``None`` for
    any name (the generic error). ``application_name`` is set for call commands.
    """

    def __init__(self, name: str, category: str, *,
                 event_name: str | Iterable[str] | None,
                 application_name: str | None = None,
                 default_event_name: str | None = None,
                 required: Iterable[str] = (), optional: Iterable[str] = (),
                 values: Mapping[str, Iterable[str]] | None = None,
                 types: Mapping[str, Kind] | None = None) -> None:
        self.category = category
        self.event_name: str | frozenset[str] | None = (
            event_name if event_name is None or isinstance(event_name, str)
            else frozenset(event_name))
        self.application_name = application_name
        self.default_event_name = (default_event_name if default_event_name is not None
                                   else event_name if isinstance(event_name, str) else None)
        all_values: dict[str, Iterable[str]] = {"Event-Category": (category,)}
        if isinstance(self.event_name, str):
            all_values["Event-Name"] = (self.event_name,)
        elif self.event_name is not None:
            all_values["Event-Name"] = tuple(sorted(self.event_name))
        if application_name is not None:
            all_values["Application-Name"] = (application_name,)
        all_values.update(values or {})
        super().__init__(name, required, optional, all_values, types,
                         default_required=DEFAULT_REQUIRED, default_optional=DEFAULT_OPTIONAL,
                         default_types=DEFAULT_TYPES)
        self._header_names = {f.lower().replace("-", "_"): f for f in self.fields}

    def event_names(self) -> tuple[str, ...]:
        """The Event-Name values this type answers to (empty: any)."""
        if self.event_name is None:
            return ()
        if isinstance(self.event_name, str):
            return (self.event_name,)
        return tuple(sorted(self.event_name))

    def header_name(self, keyword: str) -> str:
        """``server_id`` → ``Server-ID``; a wire name (``Server-ID``) is kept as it is."""
        if "-" in keyword or keyword[:1].isupper():
            return keyword
        try:
            return self._header_names[keyword]
        except KeyError:
            raise TypeError(f"build({self.name!r}): unknown header keyword {keyword!r}") from None

    def build(self, data: Mapping[str, Any], **headers: Any) -> dict:
        """A new, valid message of this type from ``data`` (see :func:`schemas.build`)."""
        if not isinstance(data, Mapping):
            raise _not_an_object(self.name, data)
        merged = dict(data)
        for keyword, value in headers.items():
            merged[self.header_name(keyword)] = value
        merged["Event-Category"] = self.category
        if isinstance(self.event_name, str):
            merged["Event-Name"] = self.event_name
        elif merged.get("Event-Name") is None and self.default_event_name is not None:
            merged["Event-Name"] = self.default_event_name
        if self.application_name is not None:
            merged["Application-Name"] = self.application_name
        if merged.get("Msg-ID") is None:
            merged["Msg-ID"] = uuid.uuid4().hex
        if merged.get("App-Name") is None:
            merged["App-Name"] = DEFAULT_APP_NAME
        if merged.get("App-Version") is None:
            merged["App-Version"] = DEFAULT_APP_VERSION
        if merged.get("Node") is None:
            merged["Node"] = _default_node()
        return self.validate(self.prune(merged))


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def _with_values(kind: Kind, allowed: Iterable[str] | None) -> Kind:
    if allowed is None:
        return kind
    if isinstance(kind, ListOf):  # values of a list field constrain its elements
        return ListOf(OneOf(kind.item, allowed))
    return OneOf(kind, allowed)


def _schema_name(name: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in name).split()
    return "".join(w[:1].upper() + w[1:] for w in words) + "Schema"


def obj(name: str, required: Iterable[str] = (), optional: Iterable[str] = (),
        values: Mapping[str, Iterable[str]] | None = None,
        types: Mapping[str, Kind] | None = None) -> ObjectSpec:
    """Declare a nested object (an element of ``Routes``, ``Endpoints``, ``Tones``...)."""
    return ObjectSpec(name, required, optional, values, types)


def message(name: str, category: str, *, event_name: str | Iterable[str] | None = "",
            application_name: str | None = None, default_event_name: str | None = None,
            required: Iterable[str] = (), optional: Iterable[str] = (),
            values: Mapping[str, Iterable[str]] | None = None,
            types: Mapping[str, Kind] | None = None) -> MessageSpec:
    """Declare a message type. ``event_name`` defaults to the message name; pass a set
    of names for a type that answers to several, or ``None`` for any name."""
    return MessageSpec(name, category, event_name=name if event_name == "" else event_name,
                       application_name=application_name,
                       default_event_name=default_event_name, required=required,
                       optional=optional, values=values, types=types)


# --------------------------------------------------------------------------- registry

COMMAND_CATEGORY = "call"
COMMAND_EVENT = "command"


class Registry:
    """Every known message type, by name and by (Event-Category, Event-Name[, app])."""

    def __init__(self) -> None:
        self._by_name: dict[str, MessageSpec] = {}
        self._by_key: dict[tuple[str, str], MessageSpec] = {}
        self._any_name: dict[str, MessageSpec] = {}
        self._commands: dict[str, MessageSpec] = {}
        self._categories: dict[str, list[str]] = {}

    def register(self, *specs: MessageSpec) -> None:
        for spec in specs:
            if spec.name in self._by_name:
                raise ValueError(f"message {spec.name!r} declared twice")
            self._by_name[spec.name] = spec
            if spec.application_name is not None:
                self._commands[spec.application_name] = spec
                self._note(spec.category, COMMAND_EVENT)
                continue
            if spec.event_name is None:
                self._any_name[spec.category] = spec
                self._categories.setdefault(spec.category, [])
                continue
            for event_name in spec.event_names():
                key = (spec.category, event_name)
                if key in self._by_key:
                    raise ValueError(f"{key} declared by {self._by_key[key].name!r} "
                                     f"and {spec.name!r}")
                self._by_key[key] = spec
                self._note(spec.category, event_name)

    def _note(self, category: str, event_name: str) -> None:
        names = self._categories.setdefault(category, [])
        if event_name not in names:
            names.append(event_name)

    def names(self) -> list[str]:
        return list(self._by_name)

    def get(self, name: str) -> MessageSpec:
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise UnknownMessage("unknown", {ROOT: [f"no message named {name!r}"]}) from None

    def commands(self) -> list[str]:
        return list(self._commands)

    def lookup(self, category: str, event_name: str,
               application_name: str | None = None) -> MessageSpec:
        """The type of a message with these names; :class:`UnknownMessage` if none."""
        errors = self._lookup_errors(category, event_name, application_name)
        if isinstance(errors, MessageSpec):
            return errors
        raise UnknownMessage(
            "command" if (category, event_name) == (COMMAND_CATEGORY, COMMAND_EVENT)
            else "unknown", errors)

    def _lookup_errors(self, category: Any, event_name: Any,
                       application_name: Any) -> MessageSpec | dict[str, list[str]]:
        if not isinstance(category, str) or not isinstance(event_name, str):
            errors = {}
            for field, value in (("Event-Category", category), ("Event-Name", event_name)):
                if value is None:
                    errors[field] = ["missing"]
                elif not isinstance(value, str):
                    errors[field] = [f"expected a string, got {json_type(value)}"]
            return errors
        spec = self._by_key.get((category, event_name))
        if spec is not None:
            return spec
        if category == COMMAND_CATEGORY and event_name == COMMAND_EVENT:
            command = (self._commands.get(application_name)
                       if isinstance(application_name, str) else None)
            if command is not None:
                return command
            if application_name is None:
                return {"Application-Name": ["missing"]}
            if not isinstance(application_name, str):
                return {"Application-Name": [f"expected a string, "
                                             f"got {json_type(application_name)}"]}
            return {"Application-Name": [f"{application_name!r} is not one of "
                                         f"{self.commands()}"]}
        spec = self._any_name.get(category)
        if spec is not None:
            return spec
        if category not in self._categories:
            return {"Event-Category": [f"{category!r} is not one of {list(self._categories)}"]}
        return {"Event-Name": [f"{event_name!r} is not one of {self._categories[category]} "
                               f"(category {category!r})"]}

    def spec_of(self, msg: dict) -> MessageSpec:
        """The type of a message, read from its own headers."""
        found = self._lookup_errors(msg.get("Event-Category"), msg.get("Event-Name"),
                                    msg.get("Application-Name"))
        if isinstance(found, MessageSpec):
            return found
        is_command = (msg.get("Event-Category"), msg.get("Event-Name")) == (COMMAND_CATEGORY,
                                                                             COMMAND_EVENT)
        raise UnknownMessage("command" if is_command else "unknown", found)

    def validate(self, msg: Any) -> dict:
        if not isinstance(msg, dict):
            raise _not_an_object("unknown", msg)
        return self.spec_of(msg).validate(msg)


REGISTRY = Registry()
