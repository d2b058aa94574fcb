"""What a call's methods raise (kept apart from :mod:`.call` so modules import it cheaply)."""

from __future__ import annotations


class CallError(Exception):
    """Base of what a call's methods raise."""


class Hangup(CallError):
    """The call ended while we were waiting."""


class CommandFailed(CallError):
    """The bridge could not run a command (its ``Error-Message`` is the reason)."""


class Timeout(CallError):
    """Nothing answered the command in time."""
