"""The operator console in a real headless Chromium (Debian's, driven by Playwright), served
by the real API on gunicorn, against the platform (bridge + ESL stand-in, registrar and cdr
workers): log in with a key, create a device (a bad one first: the API's message shows in
place), see it register live, see a call ring and answer, hang it up from the page, and
find its record among the CDRs. Screenshots in test-output/console-*.png."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import support
from tests.apikit import Switch, Tenant, tenant
from tests.test_api import ISSUED, api, cdr_worker, switch  # noqa: F401 - fixtures

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
    assert not errors, errors
    page.close()
