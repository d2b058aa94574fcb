"""Bulk CSV provisioning (whistle_tasks.ops.imports and ``whistle device|number import``).

Against the real pouchdb-server (test prefix), Redis and RabbitMQ (test vhost); each test
makes its own account(s) with unique realms.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from schemas.keys import encode_key_word
from tests import support
from whistle_tasks.cli import main
from whistle_tasks.data import accounts
from whistle_tasks.ops import callflows as cf_ops
from whistle_tasks.ops import imports, provisioning


@pytest.fixture()
def realm(clean_services: None) -> str:
    name = f"{support.unique('i')}.example.com"
    provisioning.create_account("Import", name)
    return name


def write(tmp_path: Path, text: str | bytes, name: str = "rows.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


# --- reading -------------------------------------------------------------------------------

def test_read_csv_bom_whitespace_header_names_and_bad_rows() -> None:
    data = ("\ufeff Realm , User-Name , Password ,Caller ID Name\n"
            " a.example.com , 1000 , pw ,  Alice \n"
            "\n"
            "a.example.com,1001\n"
            "a.example.com,1002,pw,Bob,extra\n"
            '"a.example.com","10""03","p,w","multi\nline"\n'
            "a.example.com,1004,pw,\n").encode()
    with pytest.raises(imports.ImportFileError, match="unknown column 'user_name'"):
        imports.read_devices(data)
    table = imports.read_devices(data.replace(b"User-Name", b"Username"))
    assert table.columns == ["realm", "username", "password", "caller_id_name"]
    assert table.rows[0] == (2, {"realm": "a.example.com", "username": "1000",
                                 "password": "pw", "caller_id_name": "Alice"})
    assert [line for line, _ in table.rows] == [2, 6, 8]
    assert table.rows[1][1]["username"] == '10"03' and table.rows[1][1]["password"] == "p,w"
    assert table.bad == [imports.RowResult(4, "failed", "expected 4 columns, found 2"),
                         imports.RowResult(5, "failed", "expected 4 columns, found 5")]
    assert len(table) == 5


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty file: a header row is required"),
    (b"username,password\nx,y\n", "missing column realm"),
    (b"realm,username\nr,x\n", "missing column password or a1_hash"),
    (b"realm,username,password,password\n", "column password appears twice"),
    (b"realm,username,passwd\n", "unknown column 'passwd'"),
    (b"realm,username,password\nr,caf\xe9,x\n", r"not UTF-8 text \(line 2, byte 29\)"),
])
def test_file_level_errors(data: bytes, message: str) -> None:
    with pytest.raises(imports.ImportFileError, match=message):
        imports.read_devices(data)


def test_realm_column_optional_with_default() -> None:
    table = imports.read_devices(b"username,a1_hash\nx,0123\n", realm="r.example.com")
    assert table.rows == [(2, {"username": "x", "a1_hash": "0123"})]
    assert imports.read_numbers(b"number,to\n1,app:x\n", realm="r").columns == ["number", "to"]


# --- devices ------------------------------------------------------------------------------

def test_device_import_outcomes_and_summary(tmp_path: Path, realm: str) -> None:
    other = f"{support.unique('i')}.example.com"
    provisioning.create_account("Other", other)
    provisioning.create_device(realm, "existing", password="old-pass")
    a1 = provisioning.a1_hash("2001", realm, "hashed-pw")
    nowhere = f"nowhere-{support.unique()}.example.com"
    csv_text = (
        "realm,username,password,a1_hash,name,caller_id_name,caller_id_number\n"
        f"{realm},2000,pw-2000,,Desk,Alice,+15550002000\n"            # 2 created
        f"{realm},2001,,{a1},,,\n"                                   # 3 created (a1 only)
        f",2002,pw-2002,,,,\n"                                      # 4 created (--realm)
        f"{other},2000,pw-other,,,,\n"                              # 5 created, other realm
        f"{realm},2000,pw-again,,,,\n"                              # 6 skipped: dup of 2
        f"{realm},existing,pw,,,,\n"                                # 7 skipped: exists
        f"{realm},2003,,not-a-hash,,,\n"                            # 8 failed: bad a1
        f"{realm},2004,,,,,\n"                                      # 9 failed: no password
        f"{nowhere},2005,pw,,,,\n"                                  # 10 failed: unknown realm
        f"{realm},2006,pw\n"                                        # 11 failed: 3 columns
        f"{realm},2007,pw,,,,,\n"                                   # 12 failed: 8 columns
        f"{realm},bad user,pw,,,,\n"                                # 13 failed: username
    )
    result = CliRunner().invoke(main, ["device", "import", str(write(tmp_path, csv_text)),
                                       "--realm", realm])
    assert result.exit_code == 1, result.output
    out = result.output.splitlines()
    summary = next(line for line in out if line.startswith("devices:"))
    assert summary.startswith("devices: 4 created, 2 skipped, 6 failed (12 rows in ")
    problems = {int(line.split()[0]): line.split(None, 2)[1:] for line in out
                if line[:1].isdigit()}
    assert problems == {
        6: ["skipped", f"duplicate of line 2 (2000@{realm})"],
        7: ["skipped", f"device existing@{realm} already exists"],
        8: ["failed", "an a1-hash is 32 hex digits: md5(user:realm:password)"],
        9: ["failed", "give exactly one of a password or an a1-hash"],
        10: ["failed", f"unknown realm {nowhere}"],
        11: ["failed", "expected 7 columns, found 3"],
        12: ["failed", "expected 7 columns, found 8"],
        13: ["failed", "invalid SIP username 'bad user'"],
    }
    assert "pw-2000" not in result.output and "pw-other" not in result.output

    # the created devices authenticate
    creds = accounts.credentials(realm, "2000")
    assert creds["sip"] == {"username": "2000", "password": "pw-2000"} and creds["enabled"]
    assert accounts.credentials(realm, "2001")["sip"] == {"username": "2001", "a1_hash": a1}
    assert accounts.credentials(realm, "2002")["sip"]["password"] == "pw-2002"
    assert accounts.credentials(other, "2000")["sip"]["password"] == "pw-other"
    assert accounts.credentials(realm, "2003") is None
    device = provisioning.get_device(realm, "2000")
    assert device["name"] == "Desk"
    # the CSV's caller_id_name/number are the internal caller id (issue #15)
    assert device["caller_id"] == {"internal": {"name": "Alice", "number": "+15550002000"}}
    assert provisioning.get_device(realm, "existing")["sip"]["password"] == "old-pass"


def test_device_import_again_only_skips(tmp_path: Path, realm: str) -> None:
    path = write(tmp_path, "username,password,enabled\n3000,pw,no\n3001,pw,yes\n")
    runner = CliRunner()
    first = runner.invoke(main, ["device", "import", str(path), "--realm", realm])
    assert first.exit_code == 0 and "devices: 2 created, 0 skipped, 0 failed" in first.output
    again = runner.invoke(main, ["device", "import", str(path), "--realm", realm])
    assert again.exit_code == 0, again.output
    assert "devices: 0 created, 2 skipped, 0 failed" in again.output
    assert accounts.credentials(realm, "3000")["enabled"] is False
    assert accounts.credentials(realm, "3001")["enabled"] is True


def test_device_import_file_error_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "username,password\nx,y\n")
    result = CliRunner().invoke(main, ["device", "import", str(path)])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {path}: missing column realm"


def test_device_import_1000_rows(tmp_path: Path, realm: str) -> None:
    lines = ["username,password,caller_id_number"]
    lines += [f"u{i:04d},pw-{i},+1555{i:07d}" for i in range(1000)]
    table = imports.read_devices(write(tmp_path, "\n".join(lines) + "\n"), realm)
    steps: list[int] = []
    started = time.monotonic()
    summary = imports.import_devices(table, realm, progress=steps.append)
    elapsed = time.monotonic() - started
    print(f"\n1,000 devices imported in {elapsed:.2f}s")
    assert (summary.created, summary.skipped, summary.failed) == (1000, 0, 0)
    assert steps == [500, 500]  # one progress step per create_devices call
    assert elapsed < 30
    assert accounts.credentials(realm, "u0999")["sip"]["password"] == "pw-999"
    assert len(provisioning.list_devices(realm)) == 1000


# --- numbers ------------------------------------------------------------------------------

def test_number_import_outcomes(tmp_path: Path, realm: str) -> None:
    provisioning.create_device(realm, "100", password="pw")
    provisioning.add_number("+14155550100", realm, "app:attendant")
    csv_text = (
        "realm,number,to,format\n"
        f"{realm},4155550101,device:100,\n"                    # 2 created (e164 +1415...)
        f"{realm},+14155550102,uri:sip:bob@example.net,\n"      # 3 created
        f"{realm},+14155550103,gateway:gw.example.net,npan\n"   # 4 created
        f"{realm},no_match,error:404:Not Here,\n"               # 5 created
        f"{realm},14155550101,app:attendant,\n"                # 6 skipped: dup of 2
        f"{realm},+14155550100,app:attendant,\n"               # 7 skipped: assigned
        f"{realm},+14155550104,device:nobody,\n"               # 8 failed: unknown device
        f"{realm},+14155550105,fax:1,\n"                       # 9 failed: target
        f"{realm},+14155550106,app:x,fancy\n"                  # 10 failed: format
        f"{realm},12ab,app:x,\n"                               # 11 failed: number
        f"unknown-{support.unique()}.example.com,+1415555,app:x,\n"  # 12 failed: realm
        f"{realm},+14155550107\n"                               # 13 failed: columns
        f"{realm},+14155550108,error:200,\n"                    # 14 failed: code
        f"{realm},+14155550109,app:nothing,\n"                 # 15 failed: no such module
    )
    result = CliRunner().invoke(main, ["number", "import", str(write(tmp_path, csv_text))])
    assert result.exit_code == 1, result.output
    out = result.output.splitlines()
    assert any(line.startswith("numbers: 4 created, 2 skipped, 8 failed (14 rows in ")
               for line in out), result.output
    problems = {int(line.split()[0]): line.split(None, 2)[1:] for line in out
                if line[:1].isdigit()}
    assert {k: v[0] for k, v in problems.items()} == {
        6: "skipped", 7: "skipped", 8: "failed", 9: "failed", 10: "failed", 11: "failed",
        12: "failed", 13: "failed", 14: "failed", 15: "failed"}
    assert problems[6][1] == "duplicate of line 2 (+14155550101)"
    assert problems[7][1] == f"number +14155550100 is already assigned in {realm}"
    assert problems[8][1] == f"unknown device nobody@{realm}"
    assert problems[9][1].startswith("target 'fax:1': expected device:USER")
    assert problems[10][1].startswith("invalid format 'fancy'")
    assert problems[11][1] == "invalid number '12ab'"
    assert problems[12][1].startswith("unknown realm unknown-")
    assert problems[13][1] == "expected 4 columns, found 2"
    assert problems[14][1] == "error target needs a SIP code 400-699, not '200'"
    assert problems[15][1].startswith("flow.module: unknown module string 'nothing'")

    stored = {row["number"]: row for row in provisioning.list_numbers(realm)}
    assert stored["+14155550101"]["target"] == "device:100"
    assert stored["+14155550102"]["target"] == "uri:sip:bob@example.net"
    assert stored["+14155550103"]["flow"] == {"module": "forward", "data": {
        "gateway": "gw.example.net", "format": "npan"}}
    assert stored["no_match"]["flow"] == {"module": "respond", "data": {
        "code": 404, "message": "Not Here"}}
    assert stored["+14155550100"]["target"] == "app:attendant"  # untouched
    # imported documents are exactly what `whistle number add` writes
    single = provisioning.add_number("+14155550110", realm, "device:100")
    imported = cf_ops.find(realm, "+14155550101")
    assert set(imported) - {"_rev"} == set(single) - {"_rev", "number", "to"}
    assert imported["pvt_type"] == single["pvt_type"] == "callflow"


def test_number_import_1000_rows(tmp_path: Path, realm: str) -> None:
    lines = ["number,to"] + [f"+1415666{i:04d},gateway:gw{i % 3}.example.net"
                             for i in range(1000)]
    table = imports.read_numbers(write(tmp_path, "\n".join(lines) + "\n"), realm)
    started = time.monotonic()
    summary = imports.import_numbers(table, realm)
    elapsed = time.monotonic() - started
    print(f"\n1,000 numbers imported in {elapsed:.2f}s")
    assert (summary.created, summary.skipped, summary.failed) == (1000, 0, 0)
    assert elapsed < 30
    assert len(provisioning.list_numbers(realm)) == 1000
    again = imports.import_numbers(table, realm)
    assert (again.created, again.skipped, again.failed) == (0, 1000, 0)


def test_number_import_broadcasts_each_created_number(tmp_path: Path, realm: str) -> None:
    from kombu import Connection, Queue

    from whistle_tasks.core import amqp
    from whistle_tasks.core.config import settings

    table = imports.read_numbers(
        write(tmp_path, "number,to\n+14157770001,app:attendant\n"
                        "+14157770002,app:attendant\n"), realm)
    key = f"doc.created.callflow.{encode_key_word(realm)}.*"
    with Connection(settings.amqp_url) as conn:
        queue = Queue("", exchange=amqp.CONFIGURATION, routing_key=key, exclusive=True,
                      auto_delete=True, durable=False)(conn.default_channel)
        queue.declare()
        summary = imports.import_numbers(table, realm)
        assert summary.created == 2
        got = []
        for _ in range(50):
            message = queue.get(no_ack=True)
            if message is None:
                if len(got) == 2:
                    break
                time.sleep(0.05)
                continue
            got.append(amqp.decode_api(message.body))
    assert sorted(m["ID"] for m in got) == ["number-+14157770001", "number-+14157770002"]
    assert {(m["Event-Name"], m["Type"], m["Realm"]) for m in got} == {
        ("doc_created", "callflow", realm)}


def test_number_import_stores_numbers_when_rabbitmq_is_away(
        tmp_path: Path, realm: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from whistle_tasks.core import amqp, changes

    monkeypatch.setattr(changes, "_publisher",
                        amqp.Publisher("amqp://guest:guest@127.0.0.1:1//", confirm=True))
    lines = ["number,to"] + [f"+1415888{i:04d},app:attendant" for i in range(20)]
    table = imports.read_numbers(write(tmp_path, "\n".join(lines) + "\n"), realm)
    started = time.monotonic()
    summary = imports.import_numbers(table, realm)
    assert (summary.created, summary.failed) == (20, 0)
    assert time.monotonic() - started < 20  # one retry budget, not one per number
    assert len(provisioning.list_numbers(realm)) == 20
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert sum("change broadcast failed" in e for e in errors) == 1
    assert "number import: 20 change broadcasts not sent" in errors
