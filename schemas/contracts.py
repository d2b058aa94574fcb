"""Every request kind of the Whistle API, as a :class:`~schemas.contract.Contract`.

One place says, for each request: which message asks, which answer, which whapp serves it
(the Celery task), by which routing key (from the request itself, normalised by its family
module) and the default binding of the serving queue. Senders, servers, the Celery wiring,
the CLI and the benchmarks all read it from here.

=============  ====================  ============================  ==========================
contract       task                  key                           answers
=============  ====================  ============================  ==========================
AUTHN          registrar.authn_req   authn.req.<realm>             authn_resp, authn_err
ROUTE          router.route_req      route.req.<realm>             route_resp
REG_SUCCESS    registrar.reg_success registration.success.<r>.<u>  (none; persistent)
REG_SYNC       registrar.reg_sync    registration.sync.<hostname>  (none; persistent)
REG_QUERY      registrar.reg_query   registration.query.<r>.<u|*>  reg_query_resp, _error
REG_FLUSH      registrar.reg_flush   registration.flush.<realm>    (none)
ROUTE_WIN      <Server-ID>.route_win (targeted) <Server-ID>        (none)
ORIGINATE      (bridges' queue)      originate.resource.req        originate_resp, _error
CALL_HANGUP    (every bridge)        call.manage.<call-id>         call_manage_resp
CALL_TRANSFER  (every bridge)        call.manage.<call-id>         call_manage_resp
MWI_QUERY      callflow.mwi_query    mwi.query.<realm>             (none: an mwi_update)
MWI_UPDATE     (every bridge)        mwi.update.<realm>.<user>     (none)
VOICEMAIL_NEW  notify.voicemail_new  notification.voicemail.new    (none; persistent)
=============  ====================  ============================  ==========================

Every request may also be answered by the generic ``error`` (it was invalid, or failed).
A key function never raises: a malformed request still travels to its whapp, whose
validation answers with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.authn import identity
from schemas.contract import Contract
from schemas.keys import (
    CALL_MANAGE_BINDING,
    CALLMGR,
    ORIGINATE_KEY,
    TARGETED,
    VOICEMAIL_NEW_KEY,
    authn_req_key,
    call_manage_key,
    mwi_query_key,
    mwi_update_key,
    reg_flush_key,
    reg_query_key,
    reg_success_key,
    reg_sync_key,
    route_req_key,
)
from schemas.presence import mwi_account
from schemas.route import route_realm


def _lower(msg: Mapping[str, Any], field: str) -> str | None:
    value = msg.get(field)
    return str(value).lower() if value else None


#: Who may register or call: the registrar answers with the credentials.
AUTHN = Contract(
    "authn", request="authn_req", answers=("authn_resp", "authn_err"),
    task="registrar.authn_req", key=lambda msg: authn_req_key(identity(msg)[0]),
    binding="authn.req.*")

#: Where does a call go: the router answers bridge, park or error.
ROUTE = Contract(
    "route", request="route_req", answers=("route_resp",), task="router.route_req",
    key=lambda msg: route_req_key(route_realm(msg)), binding="route.req.*")

#: A phone registered (or un-registered: ``Expires`` 0); persistent, nothing is lost.
REG_SUCCESS = Contract(
    "reg_success", request="reg_success", answers=(), task="registrar.reg_success",
    key=lambda msg: reg_success_key(_lower(msg, "Realm") or "", _lower(msg, "Username") or ""),
    binding="registration.success.*.*", persistent=True)

#: What a FreeSWITCH node holds, each time the bridge connects to it: the registrar
#: reconciles that node's registrations with it (persistent, like reg_success).
REG_SYNC = Contract(
    "reg_sync", request="reg_sync", answers=(), task="registrar.reg_sync",
    key=lambda msg: reg_sync_key(_lower(msg, "FreeSWITCH-Hostname") or ""),
    binding="registration.sync.*", persistent=True)

#: Where is a user (or everyone of a realm, or ``all``)?
REG_QUERY = Contract(
    "reg_query", request="reg_query", answers=("reg_query_resp", "reg_query_error"),
    task="registrar.reg_query",
    key=lambda msg: reg_query_key(_lower(msg, "Realm") or "all", _lower(msg, "Username")),
    binding="registration.query.*.*")

#: Forget a realm's (or one user's) registrations.
REG_FLUSH = Contract(
    "reg_flush", request="reg_flush", answers=(), task="registrar.reg_flush",
    key=lambda msg: reg_flush_key(_lower(msg, "Realm") or ""), binding="registration.flush.*")

#: The bridge took a park: the winner named by the park answer's ``Server-ID`` (a whapp
#: queue bound on ``targeted`` under its own name) gets the call, as task
#: ``<Server-ID>.route_win`` with that key.
ROUTE_WIN = Contract(
    "route_win", request="route_win", answers=(), task="{to}.route_win", key=None,
    exchange=TARGETED)

#: Place a call: every bridge consumes one shared queue; the one that takes the request
#: answers with the new call or why not.
ORIGINATE = Contract(
    "originate", request="originate_req", answers=("originate_resp", "originate_error"),
    task=None, key=lambda msg: ORIGINATE_KEY, binding=ORIGINATE_KEY)

#: Hang up or transfer a call in progress: every bridge hears it, the one that has the
#: call acts and answers (schemas.call_manage).
CALL_HANGUP = Contract(
    "call_hangup", request="call_hangup_req", answers=("call_manage_resp",), task=None,
    key=lambda msg: call_manage_key(str(msg.get("Call-ID") or "")), binding=CALL_MANAGE_BINDING)
CALL_TRANSFER = Contract(
    "call_transfer", request="call_transfer_req", answers=("call_manage_resp",), task=None,
    key=lambda msg: call_manage_key(str(msg.get("Call-ID") or "")), binding=CALL_MANAGE_BINDING)

#: A phone subscribed to (or registered for) message-waiting: the voicemail side (the
#: callflow whapp) answers with an ``mwi_update`` carrying the query's call ids.
MWI_QUERY = Contract(
    "mwi_query", request="mwi_query", answers=(), task="callflow.mwi_query",
    key=lambda msg: mwi_query_key(_lower(msg, "Realm") or ""), binding="mwi.query.*")

#: Message-waiting counts for one SIP account: every bridge binds a queue of its own, so
#: whichever FreeSWITCH node holds the phone's registration or subscription tells it.
MWI_UPDATE = Contract(
    "mwi_update", request="mwi_update", answers=(), task=None,
    key=lambda msg: mwi_update_key(*mwi_account(msg)), binding="mwi.update.#")

#: A caller left a voicemail: the notify whapp mails it. Persistent: a broker restart, like
#: an SMTP relay that is down, only delays the mail.
VOICEMAIL_NEW = Contract(
    "voicemail_new", request="voicemail_new", answers=(), task="notify.voicemail_new",
    key=lambda msg: VOICEMAIL_NEW_KEY, binding=VOICEMAIL_NEW_KEY, persistent=True)

ALL: tuple[Contract, ...] = (AUTHN, ROUTE, REG_SUCCESS, REG_SYNC, REG_QUERY, REG_FLUSH,
                             ROUTE_WIN, ORIGINATE, CALL_HANGUP, CALL_TRANSFER, MWI_QUERY,
                             MWI_UPDATE, VOICEMAIL_NEW)


def bindings_of(whapp: str) -> tuple[str, ...]:
    """The keys a whapp's queue is bound to on ``callmgr`` by default."""
    return tuple(c.binding for c in ALL
                 if c.whapp == whapp and c.binding and c.exchange == CALLMGR)
