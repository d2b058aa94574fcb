"""Call events (Event-Category ``call_event``, Event-Name = the FreeSWITCH event name).

The bridge turns the FreeSWITCH events of a call into ``call_event`` messages on the
``callevt`` exchange; ``CHANNEL_EXECUTE_ERROR`` is ours (a command that could not run).
One declaration serves every event name. Also the CDR Whistle emitted on
``CHANNEL_HANGUP_COMPLETE`` (Event-Category ``call_detail``, Event-Name ``cdr``).
"""

from __future__ import annotations

from schemas.base import message
from schemas.kinds import INTEGER, NUMBER, SCALARS

CATEGORY = "call_event"

EVENT_NAMES = (
    "CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY",
    "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "DTMF", "DETECTED_TONE", "RECORD_START",
    "RECORD_STOP", "CALL_UPDATE",
    "CHANNEL_EXECUTE_ERROR",  # synthetic: a command that could not run
)

#: Optional fields the bridge adds to CHANNEL_HANGUP_COMPLETE only, for the call detail
#: record (docs/api.md "Call events"): when the channel was created, saw progress, was
#: answered and hung up (Unix seconds), who hung up (``Hangup-Disposition``: FreeSWITCH's
#: ``sip_hangup_disposition``, ``send_bye`` = this side hung up, ``recv_bye`` = the far
#: end did, ``send_cancel``/``recv_cancel``/``send_refuse``/``recv_refuse``), the final SIP
#: status, the codecs, the far end's user agent, the number dialled and the SIP URIs.
HANGUP_FIELDS = ("Channel-Created-Time", "Channel-Progress-Time", "Channel-Answered-Time",
                 "Channel-Hangup-Time", "Hangup-Disposition", "SIP-Status", "Read-Codec",
                 "Write-Codec", "User-Agent", "Caller-Destination-Number", "From-Uri",
                 "To-Uri")
HANGUP_TYPES = {"Channel-Created-Time": NUMBER, "Channel-Progress-Time": NUMBER,
                "Channel-Answered-Time": NUMBER, "Channel-Hangup-Time": NUMBER,
                "SIP-Status": INTEGER}

CALL_EVENT = message(
    "call_event", CATEGORY,
    event_name=EVENT_NAMES,
    required=("Call-ID",),
    optional=("Timestamp", "Channel-Call-State", "Channel-State", "Call-Direction",
              "Caller-ID-Name", "Caller-ID-Number", "Callee-ID-Name", "Callee-ID-Number",
              "Application-Name", "Application-Response", "Application-Data",
              "Custom-Channel-Vars", "Other-Leg-Call-ID", "Other-Leg-Caller-ID-Name",
              "Other-Leg-Caller-ID-Number", "Other-Leg-Destination-Number", "Hangup-Cause",
              "Hangup-Code", "DTMF-Digit", "DTMF-Duration", "Detected-Tone", "Terminator",
              "Disposition", "Duration-Seconds", "Billing-Seconds", "Ringing-Seconds",
              "Switch-Hostname",
              # ours: why a CHANNEL_EXECUTE_ERROR's command could not run
              "Error-Message",
              # what a call detail record needs (CHANNEL_HANGUP_COMPLETE only): HANGUP_FIELDS
              *HANGUP_FIELDS),
    types={"Timestamp": NUMBER, "Custom-Channel-Vars": SCALARS, "DTMF-Duration": INTEGER,
           "Duration-Seconds": INTEGER, "Billing-Seconds": INTEGER, "Ringing-Seconds": INTEGER,
           **HANGUP_TYPES},
)

#: Whistle's call detail record, published on CHANNEL_HANGUP_COMPLETE.
CDR = message(
    "cdr", "call_detail",
    event_name="cdr",
    required=("Call-ID",),
    optional=("Timestamp", "Call-Direction", "Caller-ID-Name", "Caller-ID-Number",
              "Callee-ID-Name", "Callee-ID-Number", "Caller-Destination-Number", "Request",
              "From-Uri", "To-Uri", "User-Agent", "Other-Leg-Call-ID", "Hangup-Cause",
              "Hangup-Code", "Disposition", "Duration-Seconds", "Billing-Seconds",
              "Ringing-Seconds", "Digits-Dialed", "Remote-SDP", "Local-SDP",
              "Switch-Hostname", "Handling-Server-Name", "Custom-Channel-Vars"),
    types={"Timestamp": NUMBER, "Duration-Seconds": INTEGER, "Billing-Seconds": INTEGER,
           "Ringing-Seconds": INTEGER, "Custom-Channel-Vars": SCALARS},
)

MESSAGES = (CALL_EVENT, CDR)
