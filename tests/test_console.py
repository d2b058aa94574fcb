"""The operator console in a real headless Chromium (Debian's, driven by Playwright), served
by the real API on gunicorn, against the platform (bridge + ESL stand-in, registrar and cdr
workers): log in with a key, create a device (a bad one first: the API's message shows in
place), see it register live, see a call ring and answer, hang it up from the page, and
find its record among the CDRs; then the PBX half: create a user, turn do-not-disturb on and
forwarding on (a wrong target's message in place) and off, edit a callflow as JSON (its tree
drawn as it is typed, the API's errors shown on the node they are about), and place a
click-to-call from a registered device. Screenshots in test-output/console-*.png."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests import support
from tests.apikit import Switch, Tenant, tenant
from tests.test_api import ISSUED, api, cdr_worker, switch  # noqa: F401 - fixtures
from whistle_tasks.ops import callflows as cf_ops
from whistle_tasks.ops import users as user_ops

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = support.OUTPUT

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's Chromium is not installed (/usr/bin/chromium): apt-get install -y chromium")]


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM),
                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


def test_the_console_drives_an_account(api: str, switch: Switch, browser) -> None:  # noqa: F811
    who: Tenant = tenant("console")
    ISSUED.append(who.key)
    SHOTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{api}/console/")

    page.fill("#key", "whk_0000000000000000_" + "x" * 43)
    page.click("#login-button")
    page.wait_for_function("document.getElementById('login-err').textContent.length > 0")
    page.fill("#key", who.key)
    page.click("#login-button")
    page.wait_for_selector("#app:not([hidden])")
    assert who.realm in page.inner_text("#who")
    page.wait_for_selector("#live:not(.off)")       # the live stream is open

    page.click("nav button[data-tab=devices]")
    page.fill("#device-form [name=username]", "bad user")
    page.fill("#device-form [name=password]", "s3cret")
    page.click("#device-form button[type=submit]")
    page.wait_for_function(
        "document.querySelector('.err[data-for=username]').textContent.length > 0")
    assert "letters" in page.inner_text(".err[data-for=username]")
    page.screenshot(path=str(SHOTS / "console-device-error.png"))
    page.fill("#device-form [name=username]", "1000")
    page.fill("#device-form [name=password]", "s3cret")
    page.click("#device-form button[type=submit]")
    page.wait_for_selector("#device-rows tr[data-device='1000']")
    assert page.inner_text(".err[data-for=username]") == ""
    page.screenshot(path=str(SHOTS / "console-devices.png"))

    page.click("nav button[data-tab=registrations]")
    switch.register(who.realm, "1000")
    page.wait_for_selector("#reg-rows tr[data-user='1000']", timeout=15000)
    assert "standin-phone" in page.inner_text("#reg-rows")
    page.screenshot(path=str(SHOTS / "console-registered.png"))

    page.click("nav button[data-tab=calls]")
    call = switch.ring(who.id, "1000", "2000")
    switch.answer(call)
    row = f"#call-rows tr[data-call='{call}']"
    page.wait_for_selector(row, timeout=15000)
    page.wait_for_function(f"document.querySelector(\"{row}\").textContent.includes('answered')",
                           timeout=15000)
    page.screenshot(path=str(SHOTS / "console-call.png"))
    page.click(f"{row} button")
    page.wait_for_function("document.getElementById('call-msg').textContent.includes('hung up')")
    assert call in switch.killed
    page.wait_for_selector(row, state="detached", timeout=15000)

    page.click("nav button[data-tab=cdrs]")
    support.wait_until(lambda: page.click("#cdr-form button[type=submit]") or
                       page.query_selector(f"#cdr-rows tr[data-cdr='{call}']"), 15,
                       interval=0.5, what="the call's record in the console")
    assert "NORMAL_CLEARING" in page.inner_text(f"#cdr-rows tr[data-cdr='{call}']")
    page.screenshot(path=str(SHOTS / "console-cdrs.png"))

    page.fill("#cdr-form [name=since]", "yesterday")
    page.click("#cdr-form button[type=submit]")
    page.wait_for_function(
        "document.querySelector('#cdr-form .err[data-for=query]').textContent.length > 0")

    page.click("nav button[data-tab=callflows]")
    page.wait_for_function("document.getElementById('callflow-msg').textContent.length > 0")

    # users: create one, do-not-disturb on, forwarding on (a wrong target first) and off
    page.click("nav button[data-tab=users]")
    page.fill("#user-form [name=username]", "bad user")
    page.click("#user-form button[type=submit]")
    page.wait_for_function("document.querySelector('#user-form .err[data-for=username]')"
                           ".textContent.length > 0")
    page.fill("#user-form [name=username]", "alice")
    page.fill("#user-form [name=name]", "Alice")
    page.click("#user-form button[type=submit]")
    user_row = "#user-rows tr[data-user='alice']"
    page.wait_for_selector(user_row)
    page.click(f"{user_row} button.dnd")
    page.wait_for_function(f"document.querySelector(\"{user_row} .dnd\").textContent"
                           ".startsWith('on')")
    assert user_ops.get_user(who.realm, "alice")["do_not_disturb"] is True
    page.fill(f"{user_row} .fwd-to", "12ab")
    page.click(f"{user_row} .fwd-on")
    page.wait_for_function(f"document.querySelector(\"{user_row} .err\").textContent.length > 0")
    assert "number" in page.inner_text(f"{user_row} .err")
    page.fill(f"{user_row} .fwd-to", "+14155550100")
    page.click(f"{user_row} .fwd-on")
    page.wait_for_selector(f"{user_row} .fwd-off")
    assert "+14155550100" in page.inner_text(user_row)
    assert user_ops.get_user(who.realm, "alice")["call_forward"]["number"] == "+14155550100"
    page.screenshot(path=str(SHOTS / "console-users.png"))
    page.click(f"{user_row} .fwd-off")
    page.wait_for_selector(f"{user_row} .fwd-on")
    assert user_ops.get_user(who.realm, "alice")["call_forward"]["enabled"] is False

    # the callflow editor: JSON, its tree as typed, the API's errors on their node
    page.click("nav button[data-tab=callflows]")
    page.fill("#callflow-json", "{ not json")
    page.wait_for_selector("#callflow-errors li[data-path=_json]")
    flow = {"name": "front", "numbers": ["3100"], "flow": {
        "module": "menu", "data": {"greeting": "vm-hello"}, "children": {
            "1": {"module": "ring_group", "data": {
                "members": [{"type": "device", "id": "1000"}], "timeout": "soon"}},
            "2": {"module": "user", "data": {"username": "alice"}}}}}
    page.fill("#callflow-json", json.dumps(flow))
    page.wait_for_selector("#callflow-preview li[data-path='flow.children.2']")
    page.click("#callflow-save")
    page.wait_for_selector("#callflow-errors li[data-path='flow.children.1.data.timeout']")
    page.wait_for_selector("#callflow-preview li.bad[data-path='flow.children.1']")
    assert "integer" in page.inner_text("#callflow-preview li.bad .why")
    page.screenshot(path=str(SHOTS / "console-callflow-error.png"))
    flow["flow"]["children"]["1"]["data"]["timeout"] = 20
    page.fill("#callflow-json", json.dumps(flow))
    page.click("#callflow-save")
    page.wait_for_function("document.getElementById('callflow-msg').textContent"
                           ".includes('saved')")
    page.wait_for_selector("#callflow-trees h3[data-callflow]")
    assert "3100" in page.inner_text("#callflow-trees")
    assert not page.query_selector("#callflow-preview li.bad")
    assert cf_ops.find(who.realm, "3100")["flow"]["children"]["1"]["data"]["timeout"] == 20
    page.screenshot(path=str(SHOTS / "console-callflows.png"))

    # click-to-call from the registered device (an unknown one: the API's message in place)
    page.click("nav button[data-tab=calls]")
    page.fill("#c2c-form [name=from]", "9999")
    page.fill("#c2c-form [name=to]", "2001")
    page.click("#c2c-form button[type=submit]")
    page.wait_for_function("document.querySelector('#c2c-form .err[data-for=from]')"
                           ".textContent.length > 0")
    page.fill("#c2c-form [name=from]", "1000")
    page.click("#c2c-form button[type=submit]")
    page.wait_for_function("document.getElementById('c2c-msg').textContent.includes('placed')",
                           timeout=30000)
    placed = re.search(r"call (\S+) placed", page.inner_text("#c2c-msg")).group(1)
    assert [c for c in switch.standin.commands if c.verb == "bgapi" and placed in c.args
            and c.args.endswith("&transfer(2001)")]
    page.screenshot(path=str(SHOTS / "console-click-to-call.png"))
    assert not errors, errors
    page.close()
