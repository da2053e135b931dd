"""The web page in a real browser: Debian's chromium driven by Playwright, against `hookflash run`
as a real process (simulator backend, temp data dir, free loopback ports) and a real Kamailio.

An owner's first visit sets the password; the SIP server and port 1 are configured from the pages
alone and the Status page shows the port registered (Kamailio agrees); a bad value shows its error
beside the field; a forged form (cross-site, and same-site without the CSRF token) changes nothing;
an API call without credentials gets 401. Each page's screenshot goes to $HOOKFLASH_ARTIFACTS
(default tests/artifacts/).
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.sip_peers import procs
from tests.sip_peers.kamailio import Kamailio
from tests.sip_peers.ports import free_port

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a long admin password"
CONFIG = """
version = 1
[system]
data_dir = "{data}"
[hardware]
ports = 2
[sip]
local_port = 0
[web]
listen = "127.0.0.1:{web}"
[[ports]]
extension = "101"
[[ports]]
extension = "102"
"""

playwright_sync = pytest.importorskip("playwright.sync_api", reason="pip install playwright (dev extra)")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.peers,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt install chromium; "
                                                     "CI installs it from .ci/apt-packages.txt)"),
]


def artifacts() -> Path:
    path = Path(os.environ.get("HOOKFLASH_ARTIFACTS", ROOT / "tests" / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Gateway:
    url: str
    config: Path
    log: Path


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kamailio]:
    k = Kamailio(tmp_path_factory.mktemp("kamailio"), users={"201": "pw-201-secret"}, tls=False)
    k.start()
    yield k
    k.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`hookflash run` with the web page on a free loopback port; stopped by pid at teardown."""
    data = tmp_path_factory.mktemp("gateway")
    port = free_port()
    config = data / "hookflash.toml"
    config.write_text(CONFIG.format(data=data, web=port))
    log = data / "hookflash.log"
    proc = procs.start([sys.executable, "-m", "firmware.cli", "run", "--config", str(config), "--no-console"],
                       log, ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        procs.wait_for(lambda: _answers(url) or proc.poll() is not None, 20, "the web page")
        assert proc.poll() is None, procs.tail(log)
        yield Gateway(url, config, log)
    finally:
        procs.stop(proc)


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/api/v1/openapi.json", timeout=1).close()
    except (urllib.error.URLError, OSError):
        return False
    return True


@pytest.fixture(scope="module")
def browser() -> Iterator[playwright_sync.Browser]:
    # Chromium's sandbox refuses to run as root; containers often have a tiny /dev/shm
    args = ["--disable-dev-shm-usage", *(["--no-sandbox"] if os.geteuid() == 0 else [])]
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        yield b
        b.close()


def shot(page: playwright_sync.Page, name: str) -> None:
    page.screenshot(path=str(artifacts() / f"web-{name}.png"), full_page=True)


def logged_in(browser: playwright_sync.Browser, gateway: Gateway) -> playwright_sync.Page:
    """A fresh browser context, logged in (setting the password if this is the first visit)."""
    page = browser.new_context().new_page()
    page.goto(gateway.url + "/")
    if "/setup" in page.url:
        page.fill("#password", PASSWORD)
        page.fill("#confirm", PASSWORD)
        page.click("main button[type=submit]")
    elif "/login" in page.url:
        page.fill("#password", PASSWORD)
        page.click("main button[type=submit]")
    page.wait_for_url(gateway.url + "/")
    return page


def test_first_run_then_a_port_registered_from_the_pages_alone(browser: playwright_sync.Browser,
                                                               gateway: Gateway, kamailio: Kamailio) -> None:
    expect = playwright_sync.expect
    page = browser.new_context().new_page()
    page.goto(gateway.url + "/ports")
    assert page.url.endswith("/setup")  # no default password: nothing but the setup page works
    expect(page.locator("h1")).to_contain_text("set the admin password")
    shot(page, "setup")
    page.fill("#password", PASSWORD)
    page.fill("#confirm", PASSWORD + " typo")
    page.click("main button[type=submit]")
    expect(page.locator(".field-error")).to_contain_text("The two passwords differ")
    page.fill("#password", PASSWORD)
    page.fill("#confirm", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(gateway.url + "/")
    expect(page.locator("#live")).to_have_text("live")  # the WebSocket is up
    shot(page, "status-intercom")

    assert kamailio.ports is not None
    page.click("nav >> text=SIP server")
    page.fill("#f-registrar", f"127.0.0.1:{kamailio.ports.udp}")
    page.click("main button[type=submit]")
    expect(page.locator(".flash")).to_contain_text("Saved.")
    shot(page, "sip")

    page.click("nav >> text=Ports")
    shot(page, "ports")
    page.click("text=Edit >> nth=0")
    page.fill("#f-extension", "2x1")
    page.click("main button[type=submit]")
    expect(page.locator("#f-extension-error")).to_have_text("must be 2-15 digits")
    expect(page.locator(".field.invalid #f-extension")).to_have_value("2x1")
    shot(page, "port-errors")
    page.fill("#f-extension", "201")
    page.fill("#f-password", "pw-201-secret")
    page.fill("#f-display_name", "Kitchen")
    page.click("main button[type=submit]")
    expect(page.locator(".flash")).to_contain_text("Saved.")
    assert "pw-201-secret" not in page.content()  # write-only

    page.click("nav >> text=Status")
    expect(page.locator("#ports tbody tr >> nth=0").locator(".pill.registered")).to_be_visible(timeout=15000)
    assert kamailio.is_registered("201")
    shot(page, "status-registered")

    page.goto(gateway.url + "/ports/1")  # the Features fieldset and an extra account
    expect(page.locator("#features > legend")).to_have_text("Features")
    page.click("#account-new summary")
    page.fill("#f-a1-extension", "301")
    page.fill("#f-a1-password", "pw-301-secret")
    page.fill("#f-a1-prefix", "8")
    page.click("#account-new button[type=submit]")
    expect(page.locator(".flash")).to_contain_text("Saved.")
    expect(page.locator("#account-1 > fieldset > legend")).to_contain_text("301")
    assert "pw-301-secret" not in page.content()  # write-only
    shot(page, "port-features")
    page.click("#account-1 button.danger")  # the Remove button posts the same form elsewhere
    expect(page.locator(".flash")).to_contain_text("Account removed.")
    assert "301" not in gateway.config.read_text()

    page.click("nav >> text=Star codes")
    page.fill("#f-star_codes-dnd_on", "*7")
    page.click("main button[type=submit]")
    expect(page.locator("#f-star_codes-dnd_on-error")).to_contain_text("the start of forward_always_on")
    shot(page, "star-codes-errors")

    for name, path in (("regional", "/regional"), ("star-codes", "/star-codes"), ("history", "/history"),
                       ("diagnostics", "/diagnostics"), ("system", "/system")):
        page.goto(gateway.url + path)
        expect(page.locator("h1")).to_be_visible()
        shot(page, name)


def test_forged_forms_and_anonymous_api_calls_are_refused(browser: playwright_sync.Browser,
                                                         gateway: Gateway) -> None:
    page = logged_in(browser, gateway)
    before = gateway.config.read_text()
    # Cross-site: another page auto-submits a form to the gateway. SameSite=Strict keeps the
    # session cookie home, so the request arrives anonymous and lands on the login page.
    evil = page.context.new_page()
    evil.set_content(f'<form id="f" method="post" action="{gateway.url}/sip">'
                     '<input name="registrar" value="evil.example"></form>')
    evil.evaluate("document.getElementById('f').submit()")
    evil.wait_for_url(gateway.url + "/login")
    # Same-site but without the CSRF token (what a forged form would be if the cookie did go along).
    response = page.context.request.post(gateway.url + "/sip", form={"registrar": "evil.example"})
    assert response.status == 403 and "CSRF" in response.text()
    time.sleep(0.2)
    assert gateway.config.read_text() == before
    anonymous = browser.new_context()
    api = anonymous.request.get(gateway.url + "/api/v1/status")
    assert api.status == 401 and api.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.request.get(gateway.url + "/api/v1/openapi.json").status == 200
    ok = page.context.request.get(gateway.url + "/api/v1/status")
    assert ok.status == 200 and [p["port"] for p in ok.json()["ports"]] == [1, 2]
    anonymous.close()
