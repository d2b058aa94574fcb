"""switch_bridge: the ecallmgr, between FreeSWITCH (ESL, mod_xml_curl) and the Whistle API."""
