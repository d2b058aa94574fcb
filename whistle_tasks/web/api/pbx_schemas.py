"""Bodies of the PBX half of the API (users, ring groups, callflows, voicemail, prompts,
click-to-call), and the shapes of their ids in paths.

The values already constrained elsewhere are taken from where they are declared: the
forward conditions (``ops.users.FORWARD_WHEN``), ring group members and names
(``schemas.callflow``), voicemail folders (``data.voicemail.FOLDERS``). A callflow's body is
checked by the callflow schema itself (``ops.callflows.save``), so its errors name the path
inside the flow.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from werkzeug.routing import BaseConverter

from schemas import callflow as cf
from whistle_tasks.data import voicemail as vm
from whistle_tasks.ops.users import FORWARD_WHEN
from whistle_tasks.web.api.schemas import CallerIdField, CallerIdOptionsField, Strict

# --- ids in paths -------------------------------------------------------------------------


class NameId(BaseConverter):
    """A user, group or prompt name (letters, digits, ``_ . -``; 64 at most)."""

    regex = "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"


class MailboxId(BaseConverter):
    """A mailbox number (digits, ``*``, ``#``: send ``#`` as ``%23``)."""

    regex = "[0-9*#]{1,16}"


class CallflowId(BaseConverter):
    """A callflow's id (32 hex digits, or ``number-<number>`` of ``whistle number add``),
    or one of its numbers."""

    regex = "[A-Za-z0-9+][A-Za-z0-9_.+*#-]{0,127}"


CONVERTERS = {"name": NameId, "mailbox": MailboxId, "callflowid": CallflowId}

NUMBER_OR_URI = validate.Regexp(r"^(?:\+?[0-9*#]{1,32}|sips?:[^\s<>\"]{1,1024})$",
                                error="a number (digits, optionally after +) or a sip: URI")
USER_NAME = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                            error="1 to 64 letters, digits or _ . - (a letter or digit first)")
MAILBOX = validate.Regexp(r"^[0-9*#]{1,16}$", error="digits, * and #, up to 16")
PIN = validate.Regexp(r"^[0-9]{4,12}$", error="4 to 12 digits")


# --- users --------------------------------------------------------------------------------

class Forward(Schema):
    enabled = fields.Bool()
    number = fields.Str()
    uri = fields.Str()
    always = fields.Bool()
    busy = fields.Bool()
    no_answer = fields.Bool()
    keep_caller_id = fields.Bool()


class User(Schema):
    id = fields.Str()
    username = fields.Str()
    name = fields.Str()
    do_not_disturb = fields.Bool()
    call_forward = fields.Nested(Forward)
    voicemail_box = fields.Str(allow_none=True)
    devices = fields.List(fields.Str(), metadata={"description": "usernames of its devices"})
    caller_id = fields.Dict()
    caller_id_options = fields.Dict()


class UserList(Schema):
    data = fields.List(fields.Nested(User))


class UserCreate(Strict):
    username = fields.Str(required=True, validate=USER_NAME)
    name = fields.Str(validate=validate.Length(1, 128))
    voicemail_box = fields.Str(validate=MAILBOX)
    caller_id = CallerIdField()
    caller_id_options = CallerIdOptionsField()


class ForwardChange(Strict):
    """``{"to": null}`` turns forwarding off."""

    to = fields.Str(required=True, allow_none=True, validate=NUMBER_OR_URI)
    when = fields.List(fields.Str(validate=validate.OneOf(FORWARD_WHEN)),
                       load_default=list, metadata={"description": "none: always"})
    keep_caller_id = fields.Bool(load_default=True)


class UserPatch(Strict):
    name = fields.Str(validate=validate.Length(1, 128))
    voicemail_box = fields.Str(validate=MAILBOX)
    do_not_disturb = fields.Bool()
    call_forward = fields.Nested(ForwardChange)
    caller_id = CallerIdField()
    caller_id_options = CallerIdOptionsField()

    @validates_schema
    def something(self, data: dict[str, Any], **_: Any) -> None:  # noqa: ANN401
        if not data:
            raise ValidationError("nothing to change", field_name="_schema")


class UserDevice(Strict):
    device = fields.Str(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9_.+*#-]{1,64}$", error="a device's username"))


# --- ring groups --------------------------------------------------------------------------

class Member(Strict):
    type = fields.Str(required=True, validate=validate.OneOf(cf.MEMBER_TYPES))
    id = fields.Str(required=True, validate=validate.Length(1, 128))
    timeout = fields.Int(validate=validate.Range(1, 600))
    delay = fields.Int(validate=validate.Range(0, 600))


class Group(Schema):
    id = fields.Str()
    name = fields.Str()
    members = fields.List(fields.Nested(Member))
    strategy = fields.Str()
    timeout = fields.Int(allow_none=True)


class GroupList(Schema):
    data = fields.List(fields.Nested(Group))


class GroupPut(Strict):
    members = fields.List(fields.Nested(Member), required=True,
                          validate=validate.Length(1, 100))
    strategy = fields.Str(load_default="simultaneous",
                          validate=validate.OneOf(("simultaneous", "sequential")))
    timeout = fields.Int(validate=validate.Range(1, 600))


# --- callflows ----------------------------------------------------------------------------

class Callflow(Schema):
    id = fields.Str()
    name = fields.Str(allow_none=True)
    numbers = fields.List(fields.Str())
    patterns = fields.List(fields.Str())
    flow = fields.Dict(metadata={"description": "a node: {module, data, children}"})


class CallflowList(Schema):
    data = fields.List(fields.Nested(Callflow))


class Module(Schema):
    name = fields.Str()
    data = fields.List(fields.Str(), metadata={"description": "its data fields"})
    required = fields.List(fields.Str())
    outcomes = fields.Str(metadata={"description": "the child keys it may take"})
    ends = fields.Bool(metadata={"description": "ends the call: no children"})


class ModuleList(Schema):
    data = fields.List(fields.Nested(Module))


class MigrateReport(Schema):
    accounts = fields.Int()
    migrated = fields.Int()
    failed = fields.Int()


class CallflowBody(Strict):
    """Checked as a whole by the callflow schema (errors name the path in the flow:
    ``flow.children.1.data.timeout``)."""

    name = fields.Raw()
    numbers = fields.Raw(metadata={"description": "a list of numbers"})
    patterns = fields.Raw(metadata={"description": "a list of regular expressions"})
    flow = fields.Raw(required=True, metadata={"description": "a node: {module, data, "
                                                             "children}"})


# --- voicemail ----------------------------------------------------------------------------

class Box(Schema):
    id = fields.Str()
    mailbox = fields.Str()
    name = fields.Str()
    owner_id = fields.Str(allow_none=True)
    email = fields.List(fields.Str())
    timezone = fields.Str(allow_none=True)
    has_pin = fields.Bool(metadata={"description": "the PIN itself is never shown"})
    has_greeting = fields.Bool()
    new = fields.Int()
    saved = fields.Int()


class BoxList(Schema):
    data = fields.List(fields.Nested(Box))


class BoxCreate(Strict):
    mailbox = fields.Str(required=True, validate=MAILBOX)
    name = fields.Str(validate=validate.Length(1, 128))
    owner = fields.Str(validate=USER_NAME, metadata={"description": "a user's username"})
    pin = fields.Str(validate=PIN, load_only=True)
    email = fields.List(fields.Email(), load_default=list)
    timezone = fields.Str(validate=validate.Length(1, 64))
    max_message_length = fields.Int(validate=validate.Range(1, 3600))
    min_message_length = fields.Int(validate=validate.Range(0, 60))


class PinSet(Strict):
    pin = fields.Str(required=True, validate=PIN, load_only=True)


class Message(Schema):
    id = fields.Str()
    folder = fields.Str()
    timestamp = fields.Float()
    caller_id_name = fields.Str()
    caller_id_number = fields.Str()
    call_id = fields.Str()
    length_ms = fields.Int(allow_none=True)


class MessageQuery(Schema):
    folder = fields.Str(validate=validate.OneOf(vm.FOLDERS))


class MessageList(Schema):
    data = fields.List(fields.Nested(Message))


class MessagePatch(Strict):
    folder = fields.Str(required=True, validate=validate.OneOf(vm.FOLDERS),
                        metadata={"description": "saved: heard (mark read); new: unread"})


# --- prompts ------------------------------------------------------------------------------

class Prompt(Schema):
    name = fields.Str()
    length_ms = fields.Int(allow_none=True)
    bytes = fields.Int(allow_none=True)
    modified = fields.Int()


class PromptList(Schema):
    data = fields.List(fields.Nested(Prompt))


# --- click-to-call ------------------------------------------------------------------------

class ClickToCall(Strict):
    from_ = fields.Str(required=True, data_key="from", validate=validate.Regexp(
        r"^[A-Za-z0-9_.+*#-]{1,64}$", error="a device's username"),
        metadata={"description": "the device whose phones ring first"})
    to = fields.Str(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9+*#_-]{1,64}$", error="a number or extension (letters, digits, + * #)"))
    timeout = fields.Int(load_default=30, validate=validate.Range(5, 120))


class Originated(Schema):
    call_id = fields.Str()
