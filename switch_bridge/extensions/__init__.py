"""The bridge's capabilities, one file each, all of one shape (:class:`base.Extension`).

========================  =============================================================
``directory``             mod_xml_curl directory → ``authn_req`` → the user's XML
``dialplan``              mod_xml_curl dialplan → ``route_req`` → dialplan XML (a park
                          hands the call to call control)
``events``                FreeSWITCH events → ``callevt`` call events, registrations →
                          the registrar
``call_control``          a parked or originated call driven by a whapp's commands
``originate``             ``originate_req`` from the shared queue → a new call
``mwi``                   ``mwi_update`` → MESSAGE_WAITING (the phones' NOTIFY);
                          MESSAGE_QUERY → ``mwi_query`` to the voicemail side
========================  =============================================================
"""
