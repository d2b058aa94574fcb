"""``callflow.mwi_query``: a phone subscribed to (or registered for) message-waiting; answer
with the counts of its owner's voicemail boxes (an ``mwi_update`` carrying the query's
subscription or registration, so the bridge notifies just that phone). Kazoo's callflow
answers these queries too; the boxes are the voicemail modules' (:mod:`.modules.voicemail`).
"""

from __future__ import annotations

from typing import Any

from schemas import contracts
from whistle_tasks.core.log import get_logger
from whistle_tasks.data import voicemail as vm
from whistle_tasks.whapps.handler import handler, send

log = get_logger(__name__)


@handler(contracts.MWI_QUERY)
def mwi_query(msg: dict[str, Any]) -> str:
    try:
        answer = vm.mwi_answer(msg)
    except vm.NoMailbox:
        log.debug("mwi_query %s@%s: registered, no mailbox: no NOTIFY", msg.get("Username"),
                  msg.get("Realm"))
        return "no mailbox"
    if answer is None:
        log.info("mwi_query %s@%s: no such account", msg.get("Username"), msg.get("Realm"))
        return "unknown"
    send(contracts.MWI_UPDATE, answer)
    return f"{answer['Messages-New']}/{answer['Messages-Saved']}"
