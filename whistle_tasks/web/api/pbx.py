"""The PBX half of what the CLI does, over HTTP: users (their devices, do-not-disturb, call
forwarding), ring groups, callflows, voicemail boxes and their messages, greetings and
prompts, click-to-call.

Every write calls the function ``whistle user|group|callflow|voicemail|prompt|call`` runs
(:mod:`whistle_tasks.ops.users`, :mod:`~whistle_tasks.ops.callflows`,
:mod:`~whistle_tasks.ops.voicemail`, :mod:`~whistle_tasks.ops.calls`): CouchDB, the shared
cache entries, the change broadcast, message-waiting. Each takes the realm of the account the
key may see (``auth.account`` first), so a name in a path (a user, a group, a prompt) always
means the key's own account's. A refusal of ops becomes JSON naming its field: 404 for what
the path names and does not exist, 409 for a duplicate, 400 otherwise; a callflow the schema
refuses is a 422 whose ``errors.json`` maps each path inside the flow to its reasons. Audio
(greetings, prompts) is a WAV body: 415 for another declared type or content, 413 over
``WHISTLE_MEDIA_MAX_BYTES``. A PIN is write-only: never in an answer, never logged.
"""

from __future__ import annotations

from typing import Any, NoReturn

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from whistle_tasks.core import audio
from whistle_tasks.core.config import settings
from whistle_tasks.core.log import get_logger
from whistle_tasks.data import voicemail as vm
from whistle_tasks.ops import callflows as cf_ops
from whistle_tasks.ops import calls as call_ops
from whistle_tasks.ops import users as user_ops
from whistle_tasks.ops import voicemail as vm_ops
from whistle_tasks.ops.provisioning import ProvisioningError
from whistle_tasks.web.api import auth
from whistle_tasks.web.api import pbx_schemas as s
from whistle_tasks.web.api.provisioning import refuse

log = get_logger(__name__)

blp = Blueprint("pbx", __name__, url_prefix="/v1",
                description="Users, ring groups, callflows, voicemail, prompts, click-to-call")

ACCOUNT = "/accounts/<hex32:account_id>"
WAV_BODY = {"content": {audio.WAV: {"schema": {"type": "string", "format": "binary"}}},
            "description": "a PCM WAV file (audio/wav, audio/x-wav or "
                           "application/octet-stream)"}
DRAIN_LIMIT = 64 * 1024 * 1024


def fail(exc: ProvisioningError, field: str = "_schema", *, missing: bool = False) -> NoReturn:
    """An ops refusal as JSON: 404 when ``missing`` and the message says so (the thing the
    path names), 409 for a duplicate, 413/415 for audio, else 400 naming ``field``."""
    message = str(exc)
    if isinstance(exc, vm_ops.AudioTooLarge):
        abort(413, message=message)
    if isinstance(exc, vm_ops.AudioRefused):
        abort(415, message=message)
    if missing and message.startswith("no "):
        abort(404, message=message)
    refuse(exc, field)


def realm_of(account_id: str) -> str:
    return auth.account(account_id)["realm"]


# --- users --------------------------------------------------------------------------------

def user_view(doc: dict[str, Any], devices: list[str] | None = None) -> dict[str, Any]:
    return {"id": doc["_id"], "username": doc["username"], "name": doc.get("name"),
            "do_not_disturb": bool(doc.get("do_not_disturb")),
            "call_forward": doc.get("call_forward") or {"enabled": False},
            "voicemail_box": doc.get("voicemail_box"),
            "devices": devices if devices is not None else doc.get("devices") or [],
            "caller_id": doc.get("caller_id") or {},
            "caller_id_options": doc.get("caller_id_options") or {}}


def _user(realm: str, username: str) -> dict[str, Any]:
    try:
        return user_ops.get_user(realm, username)
    except ProvisioningError as exc:
        fail(exc, missing=True)


@blp.route(f"{ACCOUNT}/users")
class Users(MethodView):
    @blp.response(200, s.UserList)
    def get(self, account_id: str) -> dict[str, Any]:
        """The account's users, each with the usernames of its devices."""
        return {"data": [user_view(u) for u in user_ops.list_users(realm_of(account_id))]}

    @blp.arguments(s.UserCreate)
    @blp.response(201, s.User)
    def post(self, body: dict[str, Any], account_id: str) -> dict[str, Any]:
        """Create a user (as ``whistle user create``)."""
        realm = realm_of(account_id)
        try:
            doc = user_ops.create_user(realm, body["username"], name=body.get("name"),
                                       voicemail_box=body.get("voicemail_box"),
                                       caller_id=body.get("caller_id"),
                                       caller_id_options=body.get("caller_id_options"))
        except ProvisioningError as exc:
            fail(exc, "username")
        return user_view(doc, [])


@blp.route(f"{ACCOUNT}/users/<name:username>")
class UserOne(MethodView):
    @blp.response(200, s.User)
    def get(self, account_id: str, username: str) -> dict[str, Any]:
        realm = realm_of(account_id)
        doc = _user(realm, username)
        return user_view(doc, user_ops.user_devices(realm, doc["_id"]))

    @blp.arguments(s.UserPatch)
    @blp.response(200, s.User)
    def patch(self, body: dict[str, Any], account_id: str, username: str) -> dict[str, Any]:
        """Change a user: name, voicemail box, caller id (as devices: an empty value removes
        a field), do-not-disturb, call forwarding (``{"to": "+14155550100", "when":
        ["busy", "no_answer"]}``; ``{"to": null}``: off)."""
        realm = realm_of(account_id)
        doc = _user(realm, username)
        try:
            plain = {k: body[k] for k in ("name", "voicemail_box", "caller_id",
                                          "caller_id_options") if k in body}
            if plain:
                doc = user_ops.update_user(realm, username, plain)
            if "do_not_disturb" in body:
                doc = user_ops.set_dnd(realm, username, body["do_not_disturb"])
            forward = body.get("call_forward")
            if forward is not None:
                doc = user_ops.set_forward(realm, username, target=forward["to"],
                                           when=forward["when"],
                                           keep_caller_id=forward["keep_caller_id"])
        except ProvisioningError as exc:
            text = str(exc)
            fail(exc, "call_forward" if "forward" in text or "URI" in text
                 else "_schema")
        return user_view(doc, user_ops.user_devices(realm, doc["_id"]))

    @blp.response(204)
    def delete(self, account_id: str, username: str) -> None:
        """Delete a user (its devices stay, owned by nobody)."""
        realm = realm_of(account_id)
        _user(realm, username)
        user_ops.delete_user(realm, username)


@blp.route(f"{ACCOUNT}/users/<name:username>/devices")
class UserDevices(MethodView):
    @blp.arguments(s.UserDevice)
    @blp.response(200, s.User)
    def post(self, body: dict[str, Any], account_id: str, username: str) -> dict[str, Any]:
        """The user owns this device from now on (as ``whistle user add-device``)."""
        realm = realm_of(account_id)
        doc = _user(realm, username)
        try:
            user_ops.add_device(realm, username, body["device"])
        except ProvisioningError as exc:
            fail(exc, "device")
        return user_view(doc, user_ops.user_devices(realm, doc["_id"]))


# --- ring groups --------------------------------------------------------------------------

def group_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], "name": doc["name"], "members": doc.get("members") or [],
            "strategy": doc.get("strategy", "simultaneous"), "timeout": doc.get("timeout")}


@blp.route(f"{ACCOUNT}/groups")
class Groups(MethodView):
    @blp.response(200, s.GroupList)
    def get(self, account_id: str) -> dict[str, Any]:
        return {"data": [group_view(g) for g in user_ops.list_groups(realm_of(account_id))]}


@blp.route(f"{ACCOUNT}/groups/<name:name>")
class GroupOne(MethodView):
    @blp.response(200, s.Group)
    def get(self, account_id: str, name: str) -> dict[str, Any]:
        try:
            return group_view(user_ops.get_group(realm_of(account_id), name))
        except ProvisioningError as exc:
            fail(exc, missing=True)

    @blp.arguments(s.GroupPut)
    @blp.response(200, s.Group)
    @blp.alt_response(201, schema=s.Group, description="created")
    def put(self, body: dict[str, Any], account_id: str, name: str) -> Any:  # noqa: ANN401
        """Create or replace the group (as ``whistle group set``); every member must exist
        in this account."""
        realm = realm_of(account_id)
        try:
            existed = any(g["name"] == name for g in user_ops.list_groups(realm))
            members = [user_ops.check_member({k: v for k, v in m.items()})
                       for m in body["members"]]
            doc = user_ops.save_group(realm, name, members, strategy=body["strategy"],
                                      timeout=body.get("timeout"))
        except ProvisioningError as exc:
            fail(exc, "_schema" if str(exc).startswith(("invalid group name", "strategy"))
                 else "members")
        return group_view(doc), 200 if existed else 201

    @blp.response(204)
    def delete(self, account_id: str, name: str) -> None:
        try:
            user_ops.delete_group(realm_of(account_id), name)
        except ProvisioningError as exc:
            fail(exc, missing=True)


# --- callflows ----------------------------------------------------------------------------

def callflow_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], "name": doc.get("name"), "numbers": doc.get("numbers") or [],
            "patterns": doc.get("patterns") or [], "flow": doc.get("flow") or {}}


def _save_callflow(realm: str, body: dict[str, Any], callflow_id: str | None,
                   replace: bool) -> dict[str, Any]:
    try:
        return cf_ops.save(realm, body, callflow_id=callflow_id, replace=replace)
    except cf_ops.CallflowInvalid as exc:
        abort(422, message=str(exc).split("\n", 1)[0], errors={"json": exc.errors})
    except ProvisioningError as exc:
        fail(exc)


def _callflow(realm: str, ident: str) -> dict[str, Any]:
    try:
        return cf_ops.find(realm, ident)
    except ProvisioningError as exc:
        fail(exc, missing=True)


@blp.route(f"{ACCOUNT}/callflows")
class Callflows(MethodView):
    @blp.response(200, s.CallflowList)
    def get(self, account_id: str) -> dict[str, Any]:
        """Every callflow of the account (numbers routed by ``whistle number add`` too)."""
        return {"data": [callflow_view(d) for d in cf_ops.list_all(realm_of(account_id))]}

    @blp.arguments(s.CallflowBody)
    @blp.response(201, s.Callflow)
    def post(self, body: dict[str, Any], account_id: str) -> dict[str, Any]:
        """Create a callflow, checked as a whole: every problem answers 422 with its path
        inside the flow (``flow.children.1.data.timeout``)."""
        return callflow_view(_save_callflow(realm_of(account_id), body, None, False))


@blp.route("/callflow-modules")
class CallflowModules(MethodView):
    @blp.response(200, s.ModuleList)
    def get(self) -> dict[str, Any]:
        """The modules a callflow may name, with their data fields and outcomes (as
        ``whistle callflow modules``; any key: it is no account's data)."""
        return {"data": [{"name": name, "data": list(spec.data.fields),
                          "required": list(spec.data.required),
                          "outcomes": spec.outcome_words({}), "ends": spec.ends}
                         for name, spec in sorted(cf_ops.modules().items())]}


@blp.route("/callflows/migrate")
class CallflowMigrate(MethodView):
    @blp.response(200, s.MigrateReport)
    def post(self) -> dict[str, int]:
        """Rewrite number documents of before callflows as one-node callflows, in every
        account (``whistle callflow migrate``; the operator's key only; idempotent)."""
        auth.require_system()
        return cf_ops.migrate(None)


@blp.route(f"{ACCOUNT}/callflows/<callflowid:callflow_id>")
class CallflowOne(MethodView):
    @blp.response(200, s.Callflow)
    def get(self, account_id: str, callflow_id: str) -> dict[str, Any]:
        """A callflow by id or by one of its numbers."""
        return callflow_view(_callflow(realm_of(account_id), callflow_id))

    @blp.arguments(s.CallflowBody)
    @blp.response(200, s.Callflow)
    def put(self, body: dict[str, Any], account_id: str, callflow_id: str) -> dict[str, Any]:
        """Replace a callflow (checked as on creation)."""
        realm = realm_of(account_id)
        current = _callflow(realm, callflow_id)
        return callflow_view(_save_callflow(realm, body, current["_id"], True))

    @blp.response(204)
    def delete(self, account_id: str, callflow_id: str) -> None:
        """Delete a callflow with all its numbers."""
        realm = realm_of(account_id)
        _callflow(realm, callflow_id)
        try:
            cf_ops.delete(realm, callflow_id)
        except ProvisioningError as exc:
            fail(exc, missing=True)


# --- voicemail ----------------------------------------------------------------------------

def box_view(doc: dict[str, Any], counts: dict[str, int] | None = None) -> dict[str, Any]:
    counts = counts or {k: doc.get(k, 0) for k in vm.FOLDERS}
    return {"id": doc["_id"], "mailbox": doc["mailbox"], "name": doc.get("name"),
            "owner_id": doc.get("owner_id"), "email": doc.get("email") or [],
            "timezone": doc.get("timezone"), "has_pin": bool(doc.get("pin_hash")),
            "has_greeting": vm.GREETING_FILE in (doc.get("_attachments") or {}),
            "new": int(counts.get(vm.NEW, 0)), "saved": int(counts.get(vm.SAVED, 0))}


def message_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], "folder": doc.get("folder"), "timestamp": doc.get("timestamp"),
            "caller_id_name": doc.get("caller_id_name") or "",
            "caller_id_number": doc.get("caller_id_number") or "",
            "call_id": doc.get("call_id") or "", "length_ms": doc.get("length")}


def _box(realm: str, mailbox: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        return vm_ops.get_box(realm, mailbox)
    except ProvisioningError as exc:
        fail(exc, missing=True)


def wav(data: bytes, name: str) -> Response:
    return Response(data, mimetype=audio.WAV,
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "private, no-store"})


def audio_body() -> tuple[bytes, str]:
    """The request's WAV body: 415 for a declared type that is not audio (before reading
    it), 413 over ``WHISTLE_MEDIA_MAX_BYTES`` (read off the wire first, so the client hears
    the answer), 400 when empty."""
    declared = request.headers.get("Content-Type", "")
    try:
        audio.check_declared(declared)
    except audio.AudioError as exc:
        _drain(request.content_length)
        abort(415, message=f"{exc}: send a WAV file (audio/wav)")
    limit = settings.media_max_bytes
    length = request.content_length
    if length is not None and length > limit:
        _drain(length)
        abort(413, message=f"audio is limited to {limit} bytes (WHISTLE_MEDIA_MAX_BYTES)")
    request.max_content_length = limit
    data = request.get_data(cache=False)
    if len(data) > limit:
        abort(413, message=f"audio is limited to {limit} bytes (WHISTLE_MEDIA_MAX_BYTES)")
    if not data:
        abort(400, message="the request body is the WAV file",
              errors={"body": {"_schema": ["empty: send the WAV file as the body"]}})
    return data, declared


def _drain(length: int | None) -> None:
    """Read and drop a refused body (up to a bound), so the client is not cut off while
    still sending and reads the refusal."""
    if not length or length > DRAIN_LIMIT:
        return
    stream = request.environ.get("wsgi.input")
    left = length
    while stream is not None and left > 0:
        chunk = stream.read(min(65536, left))
        if not chunk:
            break
        left -= len(chunk)


@blp.route(f"{ACCOUNT}/voicemail")
class Boxes(MethodView):
    @blp.response(200, s.BoxList)
    def get(self, account_id: str) -> dict[str, Any]:
        """The account's voicemail boxes with their counts of new and saved messages."""
        boxes = vm_ops.list_boxes(realm_of(account_id))
        return {"data": [box_view(b) for b in sorted(boxes, key=lambda b: b["mailbox"])]}

    @blp.arguments(s.BoxCreate)
    @blp.response(201, s.Box)
    def post(self, body: dict[str, Any], account_id: str) -> dict[str, Any]:
        """Create a box (as ``whistle voicemail create``); the PIN is write-only."""
        realm = realm_of(account_id)
        try:
            doc = vm_ops.create_box(
                realm, body["mailbox"], name=body.get("name"), owner=body.get("owner"),
                pin=body.get("pin"), email=body["email"], timezone=body.get("timezone"),
                max_message_length=body.get("max_message_length"),
                min_message_length=body.get("min_message_length"))
        except ProvisioningError as exc:
            text = str(exc)
            fail(exc, "owner" if text.startswith("no user") else "pin" if "PIN" in text
                 else "email" if "e-mail" in text else "mailbox")
        return box_view(doc, {})


@blp.route(f"{ACCOUNT}/voicemail/<mailbox:mailbox>")
class BoxOne(MethodView):
    @blp.response(200, s.Box)
    def get(self, account_id: str, mailbox: str) -> dict[str, Any]:
        account, found = _box(realm_of(account_id), mailbox)
        return box_view(found, vm.counts(account["pvt_account_db"], found["_id"]))


@blp.route(f"{ACCOUNT}/voicemail/<mailbox:mailbox>/pin")
class BoxPin(MethodView):
    @blp.arguments(s.PinSet)
    @blp.response(204)
    def put(self, body: dict[str, Any], account_id: str, mailbox: str) -> None:
        """Set the box's PIN (as ``whistle voicemail set-pin``); it is stored hashed and
        never shown again."""
        realm = realm_of(account_id)
        _box(realm, mailbox)
        try:
            vm_ops.set_pin(realm, mailbox, body["pin"])
        except ProvisioningError as exc:
            fail(exc, "pin")


@blp.route(f"{ACCOUNT}/voicemail/<mailbox:mailbox>/greeting")
class BoxGreeting(MethodView):
    @blp.response(200, description="the greeting (audio/wav)", content_type=audio.WAV)
    def get(self, account_id: str, mailbox: str) -> Response:
        realm = realm_of(account_id)
        _box(realm, mailbox)
        try:
            return wav(vm_ops.greeting_audio(realm, mailbox), f"greeting-{mailbox}.wav")
        except ProvisioningError as exc:
            fail(exc, missing=True)

    @blp.doc(requestBody=WAV_BODY)
    @blp.response(200, s.Box)
    def put(self, account_id: str, mailbox: str) -> dict[str, Any]:
        """Store the box's greeting (played to callers before the tone)."""
        realm = realm_of(account_id)
        _box(realm, mailbox)
        data, declared = audio_body()
        try:
            saved = vm_ops.store_greeting(realm, mailbox, data, declared)
        except ProvisioningError as exc:
            fail(exc)
        account, _ = _box(realm, mailbox)
        return box_view(saved, vm.counts(account["pvt_account_db"], saved["_id"]))


@blp.route(f"{ACCOUNT}/voicemail/<mailbox:mailbox>/messages")
class Messages(MethodView):
    @blp.arguments(s.MessageQuery, location="query")
    @blp.response(200, s.MessageList)
    def get(self, query: dict[str, Any], account_id: str, mailbox: str) -> dict[str, Any]:
        """The box's messages (``folder``: new or saved; both by default), oldest first."""
        realm = realm_of(account_id)
        _box(realm, mailbox)
        try:
            found = vm_ops.messages(realm, mailbox, query.get("folder"))
        except ProvisioningError as exc:
            fail(exc, "folder")
        return {"data": [message_view(m) for m in found]}


def _message(realm: str, mailbox: str, message_id: str) -> dict[str, Any]:
    _box(realm, mailbox)
    try:
        return vm_ops.get_message(realm, mailbox, message_id)
    except ProvisioningError as exc:
        fail(exc, missing=True)


@blp.route(f"{ACCOUNT}/voicemail/<mailbox:mailbox>/messages/<hex32:message_id>")
class MessageOne(MethodView):
    @blp.response(200, s.Message)
    def get(self, account_id: str, mailbox: str, message_id: str) -> dict[str, Any]:
        return message_view(_message(realm_of(account_id), mailbox, message_id))

    @blp.arguments(s.MessagePatch)
    @blp.response(200, s.Message)
    def patch(self, body: dict[str, Any], account_id: str, mailbox: str,
              message_id: str) -> dict[str, Any]:
        """Mark a message read (``{"folder": "saved"}``) or unread (``new``); the owner's
        phones' lamps follow."""
        realm = realm_of(account_id)
        _message(realm, mailbox, message_id)
        try:
            return message_view(vm_ops.move_message(realm, mailbox, message_id,
                                                    body["folder"]))
        except ProvisioningError as exc:
            fail(exc, missing=True)

    @blp.response(204)
    def delete(self, account_id: str, mailbox: str, message_id: str) -> None:
        """Delete a message, audio and all (as ``whistle voicemail delete-message``)."""
        realm = realm_of(account_id)
        _message(realm, mailbox, message_id)
        try:
            vm_ops.delete_message(realm, mailbox, message_id)
        except ProvisioningError as exc:
            fail(exc, missing=True)


@blp.route(f"{ACCOUNT}/voicemail/<mailbox:mailbox>/messages/<hex32:message_id>/audio")
class MessageAudio(MethodView):
    @blp.response(200, description="the message (audio/wav)", content_type=audio.WAV)
    def get(self, account_id: str, mailbox: str, message_id: str) -> Response:
        realm = realm_of(account_id)
        _message(realm, mailbox, message_id)
        try:
            return wav(vm_ops.message_audio(realm, mailbox, message_id),
                       f"message-{message_id}.wav")
        except ProvisioningError as exc:
            fail(exc, missing=True)


# --- prompts ------------------------------------------------------------------------------

def prompt_view(doc: dict[str, Any]) -> dict[str, Any]:
    facts = (doc.get("pvt_media") or {}).get(doc.get("media_file") or "") or {}
    return {"name": doc["name"], "length_ms": facts.get("length_ms"),
            "bytes": facts.get("bytes"), "modified": doc.get("pvt_modified", 0)}


def _store_prompt(realm: str | None, name: str) -> tuple[dict[str, Any], int]:
    try:
        vm_ops.check_prompt_name(name)
        existed = any(p["name"] == name.lower() for p in vm_ops.list_prompts(realm))
    except ProvisioningError as exc:
        fail(exc, "name")
    data, declared = audio_body()
    try:
        doc = vm_ops.store_prompt(data, name=name, realm=realm, declared=declared)
    except ProvisioningError as exc:
        fail(exc)
    return prompt_view(doc), 200 if existed else 201


def _prompt_audio(realm: str | None, name: str) -> Response:
    try:
        data, filename = vm_ops.prompt_audio(realm, name)
    except ProvisioningError as exc:
        fail(exc, missing=True)
    return wav(data, filename)


@blp.route(f"{ACCOUNT}/prompts")
class Prompts(MethodView):
    @blp.response(200, s.PromptList)
    def get(self, account_id: str) -> dict[str, Any]:
        """The account's own prompts (played instead of the system-wide ones)."""
        return {"data": [prompt_view(p) for p in vm_ops.list_prompts(realm_of(account_id))]}


@blp.route(f"{ACCOUNT}/prompts/<name:name>")
class PromptOne(MethodView):
    @blp.response(200, description="the prompt (audio/wav)", content_type=audio.WAV)
    def get(self, account_id: str, name: str) -> Response:
        return _prompt_audio(realm_of(account_id), name)

    @blp.doc(requestBody=WAV_BODY)
    @blp.response(200, s.Prompt)
    @blp.alt_response(201, schema=s.Prompt, description="created")
    def put(self, account_id: str, name: str) -> Any:  # noqa: ANN401
        """Store the account's own recording of prompt ``name`` (as ``whistle prompt
        upload --realm``)."""
        return _store_prompt(realm_of(account_id), name)


@blp.route("/prompts")
class SystemPrompts(MethodView):
    @blp.response(200, s.PromptList)
    def get(self) -> dict[str, Any]:
        """The system-wide prompts (the operator's key only)."""
        auth.require_system()
        return {"data": [prompt_view(p) for p in vm_ops.list_prompts(None)]}


@blp.route("/prompts/<name:name>")
class SystemPromptOne(MethodView):
    @blp.response(200, description="the prompt (audio/wav)", content_type=audio.WAV)
    def get(self, name: str) -> Response:
        auth.require_system()
        return _prompt_audio(None, name)

    @blp.doc(requestBody=WAV_BODY)
    @blp.response(200, s.Prompt)
    @blp.alt_response(201, schema=s.Prompt, description="created")
    def put(self, name: str) -> Any:  # noqa: ANN401
        """Store the system-wide prompt ``name``, played by every account without its own
        (the operator's key only; as ``whistle prompt upload``)."""
        auth.require_system()
        return _store_prompt(None, name)


# --- click-to-call ------------------------------------------------------------------------

@blp.route(f"{ACCOUNT}/click-to-call")
class ClickToCall(MethodView):
    @blp.arguments(s.ClickToCall)
    @blp.response(201, s.Originated)
    def post(self, body: dict[str, Any], account_id: str) -> dict[str, Any]:
        """Ring every registered phone of device ``from``; once one answers, connect it to
        ``to`` as a call from that device (as ``whistle call originate``). Answers when
        the phone answered: 201 with the call id; 409 when the device cannot be rung (not
        registered, disabled) or did not answer; 504 when no switch bridge answered."""
        realm = realm_of(account_id)
        try:
            call_id = call_ops.click_to_call(realm, body["from_"], body["to"],
                                             timeout=body["timeout"])
        except call_ops.CallFailed as exc:
            text = str(exc)
            if text.startswith("no switch bridge"):
                abort(504, message=text)
            if text.startswith("no device"):
                abort(404, message=text, errors={"json": {"from": [text]}})
            abort(409, message=text, errors={"json": {"from": [text]}})
        log.info("click-to-call %s -> %s in %s: %s", body["from_"], body["to"], realm, call_id)
        return {"call_id": call_id}
