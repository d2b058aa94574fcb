"""``notify.voicemail_new``: mail a new voicemail, retried while the relay is away.

A relay that is down, slow or answering 4xx only delays the mail: the task is retried by
Celery (back-off 5 s doubling to 10 min, for about a day) and the message stays in the box
whatever happens. A permanent refusal (5xx: a bad address) is logged and not retried.
"""

from __future__ import annotations

from typing import Any

from schemas import contracts
from whistle_tasks.core import mail
from whistle_tasks.core.log import get_logger
from whistle_tasks.whapps.handler import count, handler
from whistle_tasks.whapps.notify import voicemail_mail

log = get_logger(__name__)

MAX_RETRIES = 160           # 5 s doubling to 10 min: about a day in all
FIRST_RETRY_S = 5
LONGEST_RETRY_S = 600


def backoff(retries: int) -> int:
    return min(LONGEST_RETRY_S, FIRST_RETRY_S * 2 ** min(retries, 10))


@handler(contracts.VOICEMAIL_NEW, bind=True, max_retries=MAX_RETRIES)
def voicemail_new(task: Any, msg: dict[str, Any]) -> str:  # noqa: ANN401
    try:
        outcome = voicemail_mail.deliver(msg)
    except mail.TransientMailError as exc:
        retries = task.request.retries
        if retries >= MAX_RETRIES:
            count("notify.voicemail_new.given_up")
            log.error("voicemail %s: mail given up after %d tries: %s",
                      msg.get("Voicemail-Name"), retries + 1, exc)
            return "given up"
        delay = backoff(retries)
        count("notify.voicemail_new.retried")
        log.warning("voicemail %s: mail delayed (%s); try %d in %d s",
                    msg.get("Voicemail-Name"), exc, retries + 2, delay)
        raise task.retry(countdown=delay, exc=exc) from None
    except mail.PermanentMailError as exc:
        count("notify.voicemail_new.refused")
        log.error("voicemail %s: mail refused: %s", msg.get("Voicemail-Name"), exc)
        return "refused"
    log.info("voicemail %s: %s", msg.get("Voicemail-Name"), outcome)
    return outcome
