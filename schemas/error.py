"""Errors (Event-Category ``error``).

The generic error answers a request that could not be served: ``Error-Message`` says
why, ``Request`` may carry the request (or its ``Request`` string). Its Event-Name is
free (``error`` when the builder is not told); the call-control error a command that
cannot run produces on the call's event stream has Event-Name ``dialplan``
(``dialplan_error``).
"""

from __future__ import annotations

from schemas.base import message
from schemas.kinds import OBJECT, TEXT, either

CATEGORY = "error"

_FIELDS = {"required": ("Error-Message",), "optional": ("Request", "Call-ID"),
           "types": {"Request": either(OBJECT, TEXT)}}

ERROR = message("error", CATEGORY, event_name=None, default_event_name="error", **_FIELDS)
DIALPLAN_ERROR = message("dialplan_error", CATEGORY, event_name="dialplan", **_FIELDS)

MESSAGES = (ERROR, DIALPLAN_ERROR)
