"""Writing a call app: a call as a Python object, every action a plain blocking call.

A call app is a function that gets a :class:`Call`::

    from whistle_tasks.whapps.callflow import call_app

    @call_app("hello")
    def hello(call):
        call.answer()
        call.play("ivr/ivr-welcome.wav")
        digits = call.collect_digits(max_digits=4, media="ivr/ivr-please_enter_extension.wav")
        call.say(digits, kind="number")
        call.hangup()

It runs inside a Celery task on a gevent worker, so a call that waits (for a prompt to
finish, for digits, for a bridged call to end) is a greenlet asleep: thousands wait cheaply.
Every method sends one Whistle command to the call's control queue and waits for the event
that answers *that* command (the bridge tags it with ``Msg-Reply-ID``); a command that
could not run raises :class:`CommandFailed`, a call that hung up raises :class:`Hangup`.
No FreeSWITCH knowledge here: these are the docs/api.md commands.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import gevent
import gevent.queue

import schemas
from schemas import contracts
from schemas.keys import call_event_key
from whistle_tasks.core import amqp
from whistle_tasks.core.inbox import Subscription
from whistle_tasks.core.log import get_logger
from whistle_tasks.whapps.callflow.errors import CallError, CommandFailed, Hangup, Timeout
from whistle_tasks.whapps.callflow.runtime import runtime
from whistle_tasks.whapps.handler import publish

log = get_logger(__name__)

__all__ = ["Call", "CallError", "CommandFailed", "Hangup", "Timeout", "originate"]

APP_NAME = "callflow"
HANGUP_EVENTS = frozenset({"CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"})
#: what still runs once the caller has hung up (the upload of a recording)
RUNS_AFTER_HANGUP = frozenset({"store"})
STORE_WAIT = 180.0
DEFAULT_WAIT = 3600.0
EVENTS_KEPT = 32      # a call keeps its latest events only (a reply that came early is one)


class Call:
    """A call under control: ``Call-ID``, its ``Control-Queue`` and its events."""

    def __init__(self, call_id: str, control_queue: str,
                 channel_vars: dict[str, Any] | None = None) -> None:
        self.call_id = call_id
        self.control_queue = control_queue
        self.channel_vars = dict(channel_vars or {})
        self.events: list[dict[str, Any]] = []   # the latest (EVENTS_KEPT at most)
        self.seen = 0                              # events seen in all
        self._bridged_at = 0                       # self.seen at the last CHANNEL_BRIDGE
        self._unbridged_at = 0                     # ... and at the last CHANNEL_UNBRIDGE
        self.hungup = False
        self.answered = False
        self.hangup_cause: str | None = None
        self._queue: gevent.queue.Queue = gevent.queue.Queue()
        self._rt = runtime()
        self._sub = self._rt.inbox.subscribe(Subscription(
            queue=f"{self._rt.server_id}.{uuid.uuid4().hex[:12]}",
            bindings=[(amqp.CALLEVT.name, call_event_key("*", call_id))],
            handler=self._queue.put))

    @classmethod
    def from_route_win(cls, msg: dict[str, Any]) -> Call:
        return cls(msg["Call-ID"], msg["Control-Queue"], msg.get("Custom-Channel-Vars"))

    # -- the one way to run a command --------------------------------------------------------
    def command(self, application: str, *, wait: bool = True, timeout: float = DEFAULT_WAIT,
                insert_at: str | None = None, **fields: Any) -> dict[str, Any] | None:  # noqa: ANN401
        """Send the command ``application`` (docs/api.md field names in ``fields``) and, with
        ``wait``, return the ``CHANNEL_EXECUTE_COMPLETE`` that answers it."""
        if self.hungup and application not in RUNS_AFTER_HANGUP:
            raise Hangup(f"{application}: the call is down ({self.hangup_cause})")
        msg_id = uuid.uuid4().hex
        data = {**fields, "Call-ID": self.call_id, "Msg-ID": msg_id}
        if insert_at:
            data["Insert-At"] = insert_at
        msg = schemas.build(application, data, **{"App-Name": APP_NAME})
        # on the channel that bound this call's event queue: AMQP keeps a channel's order,
        # so the events that answer the command cannot be routed before that binding exists
        if not self._rt.inbox.publish(amqp.encode_api(msg), amqp.CALLCTL.name,
                                      self.control_queue):
            publish(msg, amqp.CALLCTL, self.control_queue)
        if not wait:
            return None
        return self._wait_reply(application, msg_id, timeout)

    def _wait_reply(self, application: str, msg_id: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:                 # it may have come already
            if event.get("Msg-Reply-ID") == msg_id:
                return self._settle(application, event)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout(f"{application}: no answer in {timeout:.0f}s")
            try:
                event = self._queue.get(timeout=left)
            except gevent.queue.Empty:
                continue
            self._seen(event)
            if event.get("Msg-Reply-ID") == msg_id:
                return self._settle(application, event)
            if self.hungup and application == "hangup":
                return event
            if self.hungup and application not in RUNS_AFTER_HANGUP:
                raise Hangup(f"{application}: the call hung up ({self.hangup_cause})")

    def _settle(self, application: str, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("Event-Category") == "error":
            raise CommandFailed(f"{application}: {event.get('Error-Message')}")
        return event

    def _seen(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        if len(self.events) > EVENTS_KEPT:
            del self.events[:EVENTS_KEPT // 2]
        self.seen += 1
        name = event.get("Event-Name")
        if name == "CHANNEL_BRIDGE":
            self._bridged_at = self.seen
        elif name == "CHANNEL_UNBRIDGE":
            self._unbridged_at = self.seen
        if event.get("Event-Name") == "CHANNEL_ANSWER":
            self.answered = True
        if event.get("Event-Name") in HANGUP_EVENTS and not self.hungup:
            self.hungup = True
            self.hangup_cause = event.get("Hangup-Cause")

    def wait_for(self, event_name: str, timeout: float = DEFAULT_WAIT) -> dict[str, Any]:
        """The next event ``event_name`` of this call (``CHANNEL_ANSWER``, ``DTMF``...)."""
        if self.hungup and event_name not in HANGUP_EVENTS:
            raise Hangup(f"waiting for {event_name}: the call is down")
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout(f"no {event_name} in {timeout:.0f}s")
            try:
                event = self._queue.get(timeout=left)
            except gevent.queue.Empty:
                continue
            self._seen(event)
            if event.get("Event-Name") == event_name:
                return event
            if self.hungup and event_name not in HANGUP_EVENTS:
                raise Hangup(f"waiting for {event_name}: the call hung up")

    def wait_bridge_end(self, *, since: int = 0) -> None:
        """After the switch connected this call to another by itself (valet parking's
        ``uuid_bridge``): wait until that ends: a ``CHANNEL_UNBRIDGE`` after ``since`` (:attr:`seen`
        before the command that led to it), or the hangup (:class:`Hangup`). FreeSWITCH
        fires ``CHANNEL_BRIDGE``/``UNBRIDGE`` on one leg of such a bridge only, and hangs the
        other up when it ends, so the hangup is the end of the other leg."""
        if self._unbridged_at > since and self._unbridged_at >= self._bridged_at:
            return
        self.wait_for("CHANNEL_UNBRIDGE")

    def close(self) -> None:
        """Stop listening to this call's events (done for you when the call app returns)."""
        self._rt.inbox.cancel(self._sub.tag, delete_queue=True)

    # -- the actions ---------------------------------------------------------------------
    def answer(self) -> None:
        self.command("answer")
        self.answered = True

    def progress(self) -> None:
        self.command("progress")

    def hangup(self, cause: str | None = None) -> None:
        """Hang the call up (with a cause such as ``USER_BUSY``; normal clearing without)."""
        if not self.hungup:
            self.command("hangup", timeout=30, **({"Hangup-Cause": cause} if cause else {}))
            self.hungup = True
            self.hangup_cause = self.hangup_cause or cause or "NORMAL_CLEARING"

    def play(self, media: str, *, terminators: str | None = None) -> str:
        """Play ``media``; returns the outcome (e.g. ``FILE PLAYED``)."""
        fields: dict[str, Any] = {"Media-Name": media}
        if terminators is not None:
            fields["Terminators"] = terminators
        return str(self.command("play", **fields).get("Application-Response", ""))

    def tones(self, tones: list[dict[str, Any]]) -> None:
        """Play tones: each ``{"Frequencies": [...], "Duration-ON": ms, "Duration-OFF": ms}``."""
        self.command("tones", Tones=tones)

    def collect_digits(self, *, max_digits: int, media: str, min_digits: int = 1,
                       timeout_ms: int = 5000, tries: int = 3, terminators: str = "#",
                       failed_media: str = "", regex: str = r"\d+") -> str:
        """Play ``media`` and collect digits; returns them ('' when none)."""
        event = self.command("play_and_collect_digits", **{
            "Minimum-Digits": min_digits, "Maximum-Digits": max_digits, "Timeout": timeout_ms,
            "Terminators": terminators, "Media-Name": media, "Media-Tries": tries,
            "Failed-Media-Name": failed_media, "Digits-Regex": regex})
        digits = str(event.get("Application-Response") or "")
        return "" if digits in ("_none_", "_undef_") else digits

    def say(self, text: str, *, kind: str = "number", method: str = "pronounced",
            language: str = "en") -> None:
        self.command("say", **{"Say-Text": text, "Type": kind, "Method": method,
                               "Language": language})

    def record(self, media: str, *, time_limit: int = 20, terminators: str = "#") -> str:
        """Record to ``media``; returns the recording's path."""
        event = self.command("record", **{"Media-Name": media, "Time-Limit": time_limit,
                                          "Terminators": terminators})
        return str(event.get("Application-Response") or media)

    def store(self, media: str, url: str) -> None:
        """Upload the recording ``media`` (``recording://<file name>``, as :meth:`record` was
        given it: recorded in the switch's record directory) to
        ``url`` with an HTTP PUT (a media service upload URL). Works after the hangup too:
        it runs once the recording before it is closed. Raises :class:`CommandFailed` when
        the upload failed (the reason names what the server answered)."""
        self.command("store", timeout=STORE_WAIT, **{
            "Media-Name": media, "Media-Transfer-Destination": url,
            "Media-Transfer-Method": "put"})

    def bridge(self, endpoints: list[dict[str, Any]], *, timeout: int | None = None,
               method: str = "single", **options: Any) -> str:  # noqa: ANN401
        """Ring ``endpoints`` (route objects) and connect the call; blocks until the bridge
        ends and returns its disposition (``SUCCESS``, ``USER_BUSY``, ``NO_ANSWER``...)."""
        fields: dict[str, Any] = {"Endpoints": endpoints, "Dial-Endpoint-Method": method,
                                  **options}
        if timeout is not None:
            fields["Timeout"] = timeout
        return str(self.command("bridge", **fields).get("Application-Response") or "")

    def set(self, call_vars: dict[str, Any] | None = None,
            **channel_vars: Any) -> None:  # noqa: ANN401
        """Set channel variables (they come back in events as ``Custom-Channel-Vars``);
        ``call_vars`` are set on every leg of the call (exported)."""
        self.command("set", **{
            "Custom-Channel-Vars": {k: str(v) for k, v in channel_vars.items()},
            "Custom-Call-Vars": {k: str(v) for k, v in (call_vars or {}).items()}})
        self.channel_vars.update(channel_vars)

    def sleep(self, milliseconds: int) -> None:
        self.command("sleep", Time=milliseconds)

    def respond(self, code: int, message: str = "") -> None:
        fields: dict[str, Any] = {"Response-Code": code}
        if message:
            fields["Response-Message"] = message
        self.command("respond", **fields)


def originate(endpoints: list[dict[str, Any]], *, application: str = "park",
              timeout: int = 30, channel_vars: dict[str, Any] | None = None,
              wait: float = 60.0, **options: Any) -> Call:  # noqa: ANN401
    """Place a call to ``endpoints`` through any bridge; returns the :class:`Call` (under
    control) once FreeSWITCH has it. Raises :class:`CommandFailed` with the reason."""
    rt = runtime()
    data = {"Application-Name": application, "Endpoints": endpoints, "Timeout": timeout,
            **options}
    if channel_vars:
        data["Custom-Channel-Vars"] = channel_vars
    msg = schemas.build("originate_req", data, **{"App-Name": APP_NAME})
    answer = rt.rpc.request(contracts.ORIGINATE, msg, wait)
    if answer is None:
        raise Timeout(f"originate: no bridge answered in {wait:.0f}s")
    if answer.get("Event-Name") != "originate_resp":
        why = answer.get("Failure-Message") or answer.get("Error-Message") or answer
        raise CommandFailed(f"originate: {why}")
    return Call(answer["Call-ID"], answer["Control-Queue"], channel_vars)
