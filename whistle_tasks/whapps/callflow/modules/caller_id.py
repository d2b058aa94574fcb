"""``set_caller_id``: the caller id the bridges after it present, for this call only.

It overrides every configured caller id (device, user, account) on the legs the callflow
rings next; a flat ``name`` / ``number`` is both kinds, ``internal`` / ``external`` one
kind each; ``outbound_privacy`` and ``lock_external`` override the configured options. A
bridge node's own ``caller_id`` still wins over it (it is the more specific). The rule
that applies it is :mod:`whistle_tasks.data.caller_id`; nothing is sent to the switch
here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schemas.callflow import DEFAULT
from whistle_tasks.core.log import get_logger
from whistle_tasks.whapps.callflow.registry import module

if TYPE_CHECKING:
    from whistle_tasks.whapps.callflow.call import Call
    from whistle_tasks.whapps.callflow.context import Context

log = get_logger(__name__)


@module("set_caller_id")
def set_caller_id(call: Call, data: dict[str, Any], context: Context) -> str:
    ids = {key: data[key] for key in ("name", "number", "internal", "external")
           if data.get(key)}
    context.caller_id = context.override(ids)
    for key in ("outbound_privacy", "lock_external"):
        if key in data:
            context.caller_id_options[key] = data[key]
    log.info("%s: caller id set for the next bridges: %s", context.path,
             {kind: sorted(pair) for kind, pair in context.caller_id.items()})
    return DEFAULT
