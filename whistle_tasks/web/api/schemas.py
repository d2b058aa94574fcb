"""The API's request and response bodies (marshmallow), and the shapes of ids in paths.

The values that the platform already constrains are taken from where they are declared:
number formats (``core.numbers.FORMATS``), gateway invite formats
(``schemas.route.GATEWAY_INVITE_FORMATS``), the number targets of provisioning. Unknown
fields in a request body are refused (``RAISE``), so a typo is an error, not ignored.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema
from werkzeug.routing import BaseConverter

from schemas import caller_id as cid
from schemas.route import GATEWAY_INVITE_FORMATS
from whistle_tasks.core import numbers as numfmt

# --- ids in paths: checked before anything reaches CouchDB ---------------------------------


class HexId(BaseConverter):
    """A 32-hex id (accounts, devices)."""

    regex = "[0-9a-f]{32}"


class CallId(BaseConverter):
    """A call leg's id (FreeSWITCH UUIDs; a CDR may also be ``malformed-<sha1>``)."""

    regex = "[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}"


class NumberId(BaseConverter):
    """A number as stored (digits, ``+``, ``*``, ``#``) or ``no_match``."""

    regex = r"(?:no_match|\+?[0-9*#]{1,32})"


CONVERTERS = {"hex32": HexId, "callid": CallId, "number": NumberId}


class Strict(Schema):
    class Meta:
        unknown = RAISE


# --- caller id (schemas/caller_id.py: one definition for the CLI, the API and callflows) ---

class CallerIdField(fields.Dict):
    """A ``caller_id``: ``{internal?, external?}`` each ``{name?, number?}`` (a flat
    ``{name, number}`` is internal); errors name the inner field. An empty value removes
    that field on PATCH."""

    def _deserialize(self, value: Any, attr: str | None, data: Any,  # noqa: ANN401
                     **kwargs: Any) -> dict[str, Any]:  # noqa: ANN401
        try:
            cid.check(value)
        except cid.CallerIdError as exc:
            raise ValidationError({path.removeprefix("caller_id").lstrip(".") or "_schema":
                                   reasons for path, reasons in exc.errors.items()}) from None
        return dict(value)


class CallerIdOptionsField(fields.Dict):
    """``caller_id_options``: ``outbound_privacy`` (none, name, number, full),
    ``lock_external`` (bool)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any,  # noqa: ANN401
                     **kwargs: Any) -> dict[str, Any]:  # noqa: ANN401
        try:
            return cid.check_options(value)
        except cid.CallerIdError as exc:
            raise ValidationError({path.removeprefix("caller_id_options").lstrip(".")
                                   or "_schema": reasons
                                   for path, reasons in exc.errors.items()}) from None


# --- accounts -----------------------------------------------------------------------------

class Account(Schema):
    id = fields.Str(dump_only=True)
    name = fields.Str()
    realm = fields.Str()
    enabled = fields.Bool()
    number_format = fields.Str()
    caller_id = fields.Dict()
    caller_id_options = fields.Dict()


class AccountCreate(Strict):
    name = fields.Str(required=True, validate=validate.Length(1, 128))
    realm = fields.Str(required=True, validate=[
        validate.Length(1, 253),
        validate.Regexp(r"^[A-Za-z0-9.-]+$", error="letters, digits, dots and dashes only")])
    number_format = fields.Str(load_default="e164", validate=validate.OneOf(numfmt.FORMATS))


class AccountPatch(Strict):
    enabled = fields.Bool()
    caller_id = CallerIdField()
    caller_id_options = CallerIdOptionsField()

    @validates_schema
    def something(self, data: dict[str, Any], **_: Any) -> None:  # noqa: ANN401
        if not data:
            raise ValidationError("nothing to change", field_name="_schema")


class AccountList(Schema):
    data = fields.List(fields.Nested(Account))


# --- devices ------------------------------------------------------------------------------

USERNAME = validate.Regexp(r"^[A-Za-z0-9_.+*#-]{1,64}$",
                           error="1 to 64 letters, digits or _ . + * # -")
A1_HASH = validate.Regexp(r"^[0-9a-fA-F]{32}$",
                          error="32 hex digits: md5(user:realm:password)")


class Device(Schema):
    id = fields.Str()
    username = fields.Str()
    realm = fields.Str()
    name = fields.Str()
    enabled = fields.Bool()
    auth = fields.Str(metadata={"description": "password or a1-hash (secrets are write-only)"})
    caller_id = fields.Dict()
    caller_id_options = fields.Dict()
    owner_id = fields.Str(allow_none=True)


class DeviceCreate(Strict):
    username = fields.Str(required=True, validate=USERNAME)
    password = fields.Str(validate=validate.Length(1, 128), load_only=True)
    a1_hash = fields.Str(validate=A1_HASH, load_only=True)
    name = fields.Str(validate=validate.Length(1, 128))
    caller_id = CallerIdField()
    caller_id_options = CallerIdOptionsField()

    @validates_schema
    def one_secret(self, data: dict[str, Any], **_: Any) -> None:  # noqa: ANN401
        if bool(data.get("password")) == bool(data.get("a1_hash")):
            raise ValidationError("give exactly one of password or a1_hash",
                                  field_name="password")


class DevicePatch(Strict):
    name = fields.Str(validate=validate.Length(1, 128))
    enabled = fields.Bool()
    password = fields.Str(validate=validate.Length(1, 128), load_only=True)
    a1_hash = fields.Str(validate=A1_HASH, load_only=True)
    caller_id = CallerIdField()
    caller_id_options = CallerIdOptionsField()

    @validates_schema
    def not_both(self, data: dict[str, Any], **_: Any) -> None:  # noqa: ANN401
        if data.get("password") and data.get("a1_hash"):
            raise ValidationError("give only one of password or a1_hash", field_name="password")
        if not data:
            raise ValidationError("nothing to change", field_name="_schema")


class Page(Schema):
    limit = fields.Int(load_default=100, validate=validate.Range(1, 1000))
    cursor = fields.Str(validate=validate.Length(1, 512))


class DevicePage(Schema):
    data = fields.List(fields.Nested(Device))
    next_cursor = fields.Str(allow_none=True)


# --- numbers ------------------------------------------------------------------------------

class Number(Schema):
    number = fields.Str()
    to = fields.Dict(metadata={"description": "the target: {type: device|uri|gateway|app|"
                                              "error, ...}"})


class NumberCreate(Strict):
    number = fields.Str(required=True, validate=validate.Regexp(
        r"^(?:no_match|\+?[0-9*#]{1,32})$", error="digits (optionally after +) or no_match"))
    to = fields.Str(required=True, validate=validate.Length(3, 256), metadata={
        "description": "device:USER | uri:SIP-URI | gateway:HOST | app:NAME | "
                       "error:CODE[:MESSAGE] (as `whistle number add --to`)"})
    format = fields.Str(validate=validate.OneOf(GATEWAY_INVITE_FORMATS))
    replace = fields.Bool(load_default=False)


class NumberList(Schema):
    data = fields.List(fields.Nested(Number))


# --- registrations, calls ---------------------------------------------------------------

class Registration(Schema):
    username = fields.Str()
    realm = fields.Str()
    contact = fields.Str()
    user_agent = fields.Str()
    network_ip = fields.Str()
    expires_in = fields.Int()


class RegistrationList(Schema):
    data = fields.List(fields.Nested(Registration))


class Call(Schema):
    call_id = fields.Str()
    state = fields.Str()
    direction = fields.Str()
    caller_id_number = fields.Str()
    caller_id_name = fields.Str()
    callee_id_number = fields.Str()
    callee_id_name = fields.Str()
    dialled_number = fields.Str()
    other_leg_call_id = fields.Str()
    node = fields.Str()
    started = fields.Float()
    answered = fields.Float()


class CallList(Schema):
    data = fields.List(fields.Nested(Call))


class Transfer(Strict):
    to = fields.Str(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9+*#_.-]{1,64}$", error="a number or extension (letters, digits, + * #)"))
    context = fields.Str(validate=validate.Regexp(r"^[A-Za-z0-9_.-]{1,64}$"))


class Done(Schema):
    call_id = fields.Str()
    result = fields.Str()
    switch = fields.Str()


# --- CDRs ---------------------------------------------------------------------------------

class CdrQuery(Schema):
    since = fields.Str(metadata={"description": "ISO 8601 time or Unix seconds; default: "
                                                "the start of this month (UTC)"})
    until = fields.Str(metadata={"description": "ISO 8601 time or Unix seconds, excluded; "
                                                "default: now"})
    caller = fields.Str(validate=validate.Length(1, 64))
    callee = fields.Str(validate=validate.Length(1, 64))
    number = fields.Str(validate=validate.Length(1, 64),
                        metadata={"description": "caller or callee (no cursor: up to limit)"})
    limit = fields.Int(load_default=100, validate=validate.Range(1, 1000))
    cursor = fields.Str(validate=validate.Length(1, 512))
    format = fields.Str(validate=validate.OneOf(("json", "csv")), load_default="json")


class Cdr(Schema):
    class Meta:
        unknown = "include"

    id = fields.Str()
    call_id = fields.Str()
    other_leg_call_id = fields.Str()
    account_id = fields.Str()
    direction = fields.Str()
    caller_id_number = fields.Str()
    caller_id_name = fields.Str()
    callee_id_number = fields.Str()
    callee_id_name = fields.Str()
    dialled_number = fields.Str()
    callflow_id = fields.Str()
    node = fields.Str()
    start = fields.Float()
    answer = fields.Float()
    end = fields.Float()
    duration_seconds = fields.Int()
    billing_seconds = fields.Int()
    ringing_seconds = fields.Int()
    hangup_cause = fields.Str()
    hangup_code = fields.Str()
    sip_status = fields.Int()
    hung_up_by = fields.Str()
    hangup_disposition = fields.Str()
    read_codec = fields.Str()
    write_codec = fields.Str()
    user_agent = fields.Str()
    voicemail_message_id = fields.Str()
    recording_id = fields.Str()
    partial = fields.Bool()
    flags = fields.List(fields.Str())


class CdrPage(Schema):
    data = fields.List(fields.Nested(Cdr))
    next_cursor = fields.Str(allow_none=True)


class Health(Schema):
    status = fields.Str()
    couchdb = fields.Bool()
    redis = fields.Bool()
    rabbitmq = fields.Bool()
