"""Where messages travel: the Whistle exchanges and their routing keys (pure functions).

Exchanges (their AMQP declarations are :mod:`whistle_tasks.core.amqp`'s):

* ``targeted`` (direct): answers; key = the request's ``Server-ID``.
* ``callmgr`` (topic): requests to whapps and ``originate.resource.req`` to the bridges.
* ``callevt`` (topic): call events, ``call.<EVENT_NAME>.<call-id>``.
* ``callctl`` (direct): call-control commands, key = the call's control queue.
* ``configuration`` (topic): document changes, ``doc.<action>.<type>.<realm>.<id>``.

Variable words are encoded by :func:`encode_key_word`, so a realm with a dot or a user with
a space is still one word of the key. Realms and users are lower-cased *before* they get
here, by the contract of their message (:mod:`schemas.contract`), so every sender of one
request kind produces the same key for the same user.
"""

from __future__ import annotations

import re

TARGETED = "targeted"
CALLMGR = "callmgr"
CALLEVT = "callevt"
CALLCTL = "callctl"
CONFIGURATION = "configuration"
EXCHANGE_TYPES = {TARGETED: "direct", CALLMGR: "topic", CALLEVT: "topic", CALLCTL: "direct",
                  CONFIGURATION: "topic"}

ORIGINATE_KEY = "originate.resource.req"
VOICEMAIL_NEW_KEY = "notification.voicemail.new"

_KEEP = re.compile(r"[A-Za-z0-9\-~_]")
_ALL_KEPT = re.compile(r"[A-Za-z0-9\-~_]*").fullmatch


def encode_key_word(word: str) -> str:
    """One routing-key word: ``[A-Za-z0-9-~_]`` kept, space → ``+``, ``.`` → ``%2E``, every
    other byte of the UTF-8 encoding ``%XX`` (upper-case hex); a lone ``*`` or ``#`` stays,
    so it still works as a wildcard in a binding."""
    if word in ("*", "#") or _ALL_KEPT(word):
        return word
    out = []
    for ch in str(word):
        if _KEEP.match(ch):
            out.append(ch)
        elif ch == " ":
            out.append("+")
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def routing_key(*words: str) -> str:
    """Join already-fixed words (``authn``, ``req``) and encoded variable ones with dots."""
    return ".".join(words)


def authn_req_key(realm: str) -> str:
    return routing_key("authn", "req", encode_key_word(realm))


def route_req_key(realm: str) -> str:
    return routing_key("route", "req", encode_key_word(realm))


def reg_success_key(realm: str, user: str) -> str:
    return routing_key("registration", "success", encode_key_word(realm), encode_key_word(user))


def reg_sync_key(hostname: str) -> str:
    return routing_key("registration", "sync", encode_key_word(hostname))


def reg_query_key(realm: str, user: str | None = None) -> str:
    return routing_key("registration", "query", encode_key_word(realm),
                       encode_key_word(user) if user else "*")


def reg_flush_key(realm: str) -> str:
    return routing_key("registration", "flush", encode_key_word(realm))


def call_event_key(event_name: str, call_id: str) -> str:
    """``call.<EVENT_NAME>.<call-id>`` (event names and UUIDs are plain words: the encoder's
    one-regex fast path keeps them as they are)."""
    return routing_key("call", encode_key_word(event_name), encode_key_word(call_id))


def call_manage_key(call_id: str) -> str:
    """``call.manage.<call-id>``: a hang-up or transfer every bridge hears (on callmgr)."""
    return routing_key("call", "manage", encode_key_word(call_id))


CALL_MANAGE_BINDING = "call.manage.*"


def conf_change_key(action: str, doc_type: str, realm: str, doc_id: str) -> str:
    return routing_key("doc", encode_key_word(action), encode_key_word(doc_type),
                       encode_key_word(realm or "_"), encode_key_word(doc_id))


def mwi_update_key(realm: str, user: str) -> str:
    """``mwi.update.<realm>.<user>``: the message-waiting count of one SIP account."""
    return routing_key("mwi", "update", encode_key_word(realm or "_"),
                       encode_key_word(user or "_"))


def mwi_query_key(realm: str) -> str:
    return routing_key("mwi", "query", encode_key_word(realm or "_"))


def whapp_key(whapp: str) -> str:
    """Key of a whapp's internal tasks (beat, admin): ``whapp.<name>``."""
    return routing_key("whapp", encode_key_word(whapp))
