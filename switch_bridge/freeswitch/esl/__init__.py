"""FreeSWITCH event socket: ``protocol`` (framing, events, commands; pure) and ``node``
(one self-healing gevent connection per FreeSWITCH).

Why our own module and not greenswitch 0.0.19: greenswitch URL-decodes an event body
before splitting it into lines, so every value holding an encoded CR/LF (SDP) comes out
wrong (28 values in 15 of the 29 events of ``modern/c_call_2000_tone_park``), reads line
by line, and has neither JSON events nor reconnection.
"""

from switch_bridge.freeswitch.esl.node import (
    STATE_CONNECTED,
    STATE_CONNECTING,
    STATE_DOWN,
    EslAuthError,
    EslCommandError,
    EslError,
    EslNode,
    EslNotConnected,
    EslTimeout,
)
from switch_bridge.freeswitch.esl.protocol import (
    Event,
    EventParseError,
    Frame,
    FrameParser,
    parse_event,
)

__all__ = [
    "STATE_CONNECTED",
    "STATE_CONNECTING",
    "STATE_DOWN",
    "EslAuthError",
    "EslCommandError",
    "EslError",
    "EslNode",
    "EslNotConnected",
    "EslTimeout",
    "Event",
    "EventParseError",
    "Frame",
    "FrameParser",
    "parse_event",
]
