"""The switch bridge (the seed's ecallmgr): FreeSWITCH on one side, Whistle on the other.

* :mod:`switch_bridge.host`: the process; it holds the shared services and the extensions.
* :mod:`switch_bridge.extensions`: one file per flow (directory, dialplan, events, call
  control, originate), each read top to bottom.
* :mod:`switch_bridge.freeswitch`: what FreeSWITCH's wire formats are (ESL, mod_xml_curl
  forms, dialplan/directory XML, dial strings, applications, events): pure, no I/O.
* :mod:`switch_bridge.outbox` (everything sent, confirmed and buffered), :mod:`.http`
  (mod_xml_curl's HTTP server), :mod:`.authcache`, :mod:`.metrics`.
"""

#: ``App-Name`` of every message the bridge makes
APP_NAME = "whistle-bridge"
