"""The operator's FreeSWITCH snippets (deploy/freeswitch/) are complete and are what the
integration tests load: checked without a FreeSWITCH (these run everywhere)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests import fskit

SNIPPETS = sorted(fskit.DEPLOY.glob("*.xml"))
USED = re.compile(r"\$\$\{(whistle_[a-z0-9_]+)\}")


def test_every_snippet_is_well_formed_xml() -> None:
    assert SNIPPETS
    for path in SNIPPETS:
        ET.parse(path)  # raises on a broken snippet


def test_every_whistle_variable_used_is_declared_once_and_used() -> None:
    declared = fskit.snippet_variables()
    text = (fskit.DEPLOY / "vars-whistle.xml").read_text()
    for name in declared:
        assert text.count(f'data="{name}=') == 1, name
    used = {name for path in SNIPPETS if path.name != "vars-whistle.xml"
            for name in USED.findall(path.read_text())}
    assert used - set(declared) == set(), "used but not declared in vars-whistle.xml"
    assert set(declared) - used == set(), "declared but used by no snippet"


def test_no_comment_can_trip_the_preprocessor() -> None:
    """FreeSWITCH's preprocessor works on raw lines, comments included: an X-PRE-PROCESS
    written in a comment would run, and <include> lines are dropped."""
    for path in SNIPPETS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "X-PRE-PROCESS" in line.upper():
                assert path.name == "vars-whistle.xml" and line.strip().startswith(
                    '<X-PRE-PROCESS cmd="set" data="whistle_'), f"{path.name}:{number}"


def test_modules_load_xml_curl_before_sofia() -> None:
    loads = [m.get("module") for m in ET.parse(fskit.DEPLOY / "modules.conf.xml").iter("load")]
    assert loads.index("mod_xml_curl") < loads.index("mod_sofia")
    assert "mod_event_socket" in loads and "mod_dptools" in loads
    assert "mod_g711" not in loads          # G.711 is in FreeSWITCH's core


def test_profile_accepts_dtmf_however_phones_send_it() -> None:
    params = {p.get("name"): p.get("value")
              for p in ET.parse(fskit.DEPLOY / "sofia-profile-whistle.xml").iter("param")}
    assert params["liberal-dtmf"] == "true"
    assert params["rfc2833-pt"] == "101"
    assert params["challenge-realm"] == "auto_from"
    assert params["accept-blind-reg"] == "false"


def test_the_test_configuration_includes_every_snippet_unchanged(tmp_path: Path) -> None:
    fs = fskit.FreeSwitch("http://127.0.0.1:1", name="config-check", workdir=tmp_path)
    fs.write_config()
    main = (tmp_path / "conf" / "freeswitch.xml").read_text()
    wrappers = main + (tmp_path / "conf" / "sofia.conf.xml").read_text()
    included = set(re.findall(r'data="([^"]+)"', wrappers))
    assert {str(path) for path in SNIPPETS} <= included
    # the snippets' defaults first, then the instance's own values for the same names
    assert main.index("vars-whistle.xml") < main.index("test-vars.xml")
    values = (tmp_path / "conf" / "test-vars.xml").read_text()
    for name in ("whistle_bridge_url", "whistle_esl_port", "whistle_esl_password",
                 "whistle_sip_ip", "whistle_sip_port", "whistle_rtp_start_port"):
        assert f'data="{name}=' in values, name


def test_instance_values_must_be_snippet_variables(tmp_path: Path) -> None:
    fs = fskit.FreeSwitch("http://127.0.0.1:1", workdir=tmp_path,
                          overrides={"whistle_no_such_thing": "1"})
    with pytest.raises(ValueError, match="whistle_no_such_thing"):
        fs.write_config()


def test_missing_freeswitch_names_the_variable(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setenv(fskit.PREFIX_VAR, str(tmp_path))
    reason = fskit.missing()
    assert reason is not None and "WHISTLE_TEST_FREESWITCH" in reason
    assert "\n" not in reason
