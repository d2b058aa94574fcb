"""Phones registering through a real FreeSWITCH (configured from deploy/freeswitch/) and
Whistle: SIPp registers, FreeSWITCH asks the bridge for the user (mod_xml_curl), checks the
digest itself, and its sofia::register / unregister / expire events reach the registrar.

Each test asserts what SIP carried (SIPp's exit code and the responses in its message log)
and what Whistle stored (``registrations.lookup``, ``whistle registrations``).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests import fskit, support
from whistle_tasks.data import registrations
from whistle_tasks.ops import provisioning

pytestmark = pytest.mark.usefixtures("freeswitch")
WHISTLE = str(Path(sys.executable).parent / "whistle")


def register(fs: fskit.Platform, realm: str, user: str, password: str, *, port: int,
             expires: int = 3600, scenario: str = "register.xml") -> fskit.SippResult:
    return fs.sipp.run(scenario, port=port, service=user, user=user, password=password,
                       variables={"realm": realm, "expires": expires})


def registered(realm: str, user: str) -> dict | None:
    return registrations.lookup(realm, user)


def fs_registrations(fs: fskit.Platform) -> str:
    return fs.fs.cli("sofia status profile whistle reg")


def test_password_device_registers(freeswitch: fskit.Platform, realm: str) -> None:
    provisioning.create_device(realm, "1000", password="pw-1000")
    port = fskit.free_port((socket.SOCK_DGRAM,))
    result = register(freeswitch, realm, "1000", "pw-1000", port=port)
    assert result.ok, result.describe()
    assert result.received() == ["401", "200"], result.describe()
    reg = support.wait_until(lambda: registered(realm, "1000"), timeout=20,
                             what="1000 in Whistle's registrations")
    assert f"127.0.0.1:{port}" in reg["Contact"], reg
    assert f"1000@{realm}" in fs_registrations(freeswitch)
    listing = subprocess.run([WHISTLE, "registrations", "--realm", realm],
                             capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    assert "1000" in listing.stdout and f"127.0.0.1:{port}" in listing.stdout, listing.stdout


def test_a1_hash_device_registers(freeswitch: fskit.Platform, realm: str) -> None:
    provisioning.create_device(realm, "1001", a1=provisioning.a1_hash("1001", realm, "pw-1001"))
    port = fskit.free_port((socket.SOCK_DGRAM,))
    result = register(freeswitch, realm, "1001", "pw-1001", port=port)
    assert result.ok, result.describe()
    assert result.received() == ["401", "200"], result.describe()
    reg = support.wait_until(lambda: registered(realm, "1001"), timeout=20,
                             what="1001 in Whistle's registrations")
    assert f"127.0.0.1:{port}" in reg["Contact"], reg


def test_wrong_password_is_refused_and_nothing_stored(freeswitch: fskit.Platform,
                                                      realm: str) -> None:
    provisioning.create_device(realm, "1002", password="right-password")
    provisioning.create_device(realm, "1003", password="pw-1003")
    result = register(freeswitch, realm, "1002", "wrong-password",
                      port=fskit.free_port((socket.SOCK_DGRAM,)),
                      scenario="register_refused.xml")
    assert result.ok, result.describe()
    assert result.received()[0] == "401"
    assert result.received()[-1] in ("401", "403"), result.describe()
    assert len(result.received()) == 2, result.describe()
    # a registration made after the refused one is stored: the refused one would be by now
    assert register(freeswitch, realm, "1003", "pw-1003",
                    port=fskit.free_port((socket.SOCK_DGRAM,))).ok
    support.wait_until(lambda: registered(realm, "1003"), timeout=20, what="1003 registered")
    assert registered(realm, "1002") is None
    assert f"1002@{realm}" not in fs_registrations(freeswitch)


def test_unregister_removes_the_registration(freeswitch: fskit.Platform, realm: str) -> None:
    provisioning.create_device(realm, "1004", password="pw-1004")
    port = fskit.free_port((socket.SOCK_DGRAM,))
    assert register(freeswitch, realm, "1004", "pw-1004", port=port).ok
    support.wait_until(lambda: registered(realm, "1004"), timeout=20, what="1004 registered")
    result = register(freeswitch, realm, "1004", "pw-1004", port=port, expires=0)
    assert result.ok, result.describe()
    assert result.received() == ["401", "200"], result.describe()
    support.wait_until(lambda: registered(realm, "1004") is None, timeout=20,
                       what="1004's registration removed")
    assert f"1004@{realm}" not in fs_registrations(freeswitch)


def test_expired_registration_is_removed(freeswitch: fskit.Platform, realm: str) -> None:
    """Expires: 2 and no refresh: FreeSWITCH drops the binding (the test instance checks
    every second with no late margin: whistle_reg_check_seconds, whistle_reg_late_margin)
    and its sofia::expire removes the registration from Whistle."""
    provisioning.create_device(realm, "1005", password="pw-1005")
    result = register(freeswitch, realm, "1005", "pw-1005",
                      port=fskit.free_port((socket.SOCK_DGRAM,)), expires=2)
    assert result.ok, result.describe()
    support.wait_until(lambda: registered(realm, "1005"), timeout=20, what="1005 registered")
    support.wait_until(lambda: registered(realm, "1005") is None, timeout=30,
                       what="1005's registration to expire")
    assert f"1005@{realm}" not in fs_registrations(freeswitch)
