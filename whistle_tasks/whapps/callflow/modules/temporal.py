"""``temporal_route``: choose a child by the time of day, in the account's time zone.

Each rule has a ``name`` (its child's key) and any of ``days`` (``monday``..``sunday``),
``dates`` (``YYYY-MM-DD``, or ``MM-DD`` every year) and a time range ``start``–``end``
(``HH:MM``, end excluded; an end before the start runs over midnight: ``18:00``–``08:00``
is the night). A rule matches when every part it has matches now; the first rule that
matches names the outcome; none: ``_`` ("otherwise"). ``timezone`` overrides the account's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from schemas.callflow import DEFAULT, WEEKDAYS, parse_clock, parse_date
from whistle_tasks.core.log import get_logger
from whistle_tasks.whapps.callflow.registry import module

if TYPE_CHECKING:
    from whistle_tasks.whapps.callflow.call import Call
    from whistle_tasks.whapps.callflow.context import Context

log = get_logger(__name__)


def matches(rule: Mapping[str, Any], when: dt.datetime) -> bool:
    """Does ``rule`` hold at ``when`` (a local time)?"""
    days = rule.get("days")
    if days and WEEKDAYS[when.weekday()] not in days:
        return False
    dates = rule.get("dates")
    if dates:
        found = False
        for text in dates:
            parsed = parse_date(str(text))
            if parsed is not None and parsed[1:] == (when.month, when.day) and \
                    parsed[0] in (None, when.year):
                found = True
                break
        if not found:
            return False
    if rule.get("start") and rule.get("end"):
        now = when.hour * 60 + when.minute
        start, end = parse_clock(str(rule["start"])), parse_clock(str(rule["end"]))
        inside = start <= now < end if start < end else (now >= start or now < end)
        if not inside:
            return False
    return True


def choose(rules: list[Mapping[str, Any]], when: dt.datetime) -> str:
    """The name of the first rule that holds at ``when``, else ``_``."""
    for rule in rules:
        if matches(rule, when):
            return str(rule["name"])
    return DEFAULT


@module("temporal_route")
def temporal_route(call: Call, data: dict[str, Any], context: Context) -> str:
    when = context.now(data.get("timezone"))
    chosen = choose(list(data["rules"]), when)
    log.info("%s: %s at %s", context.path, chosen, when.isoformat(timespec="minutes"))
    return chosen
