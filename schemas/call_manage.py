"""Managing a call in progress from outside it (Event-Category ``call_manage``, ours).

The API (an operator hanging up a call, a customer's CRM transferring one) does not know
which switch bridge carries a call, nor its control queue. It sends a request on
``callmgr`` with key ``call.manage.<call-id>``; every bridge hears it (each binds a queue
of its own), and the one whose FreeSWITCH has the call acts and answers; the others stay
silent (the requester's budget ends the wait when no switch has the call).

* ``call_hangup_req``: hang the call up (``Hangup-Cause``, default ``NORMAL_CLEARING``).
  A call under call control gets a ``hangup`` command on its own queue (the whapp sees it
  like any command); any other call is killed (``uuid_kill``).
* ``call_transfer_req``: send the call to ``Transfer-To`` in the dialplan again
  (``uuid_transfer``; Whistle's router decides where that goes), in ``Transfer-Context``
  (default ``default``).
* ``call_manage_resp``: ``Result`` ``ok`` or ``error`` (with ``Error-Message``).
"""

from __future__ import annotations

from schemas.base import message

CATEGORY = "call_manage"

#: the digits/names a transfer may go to (no spaces, nothing FreeSWITCH would parse)
TRANSFER_TO_CHARS = "0123456789+*#_-.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

CALL_HANGUP_REQ = message(
    "call_hangup_req", CATEGORY, required=("Call-ID",), optional=("Hangup-Cause",))

CALL_TRANSFER_REQ = message(
    "call_transfer_req", CATEGORY, required=("Call-ID", "Transfer-To"),
    optional=("Transfer-Context",))

CALL_MANAGE_RESP = message(
    "call_manage_resp", CATEGORY, required=("Call-ID", "Result"),
    optional=("Error-Message", "Switch-Hostname"), values={"Result": ("ok", "error")})

MESSAGES = (CALL_HANGUP_REQ, CALL_TRANSFER_REQ, CALL_MANAGE_RESP)
