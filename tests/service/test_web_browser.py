"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, as tests/test_html_browser.py runs
it), driven over the DevTools protocol on loopback: the service runs under uvicorn on 127.0.0.1, a person
logs in, sees the flagged devices and the chart on the overview, opens a flagged device, plans its
replacement, and a device whose names carry script and image payloads is shown as text: its script never
runs (document.title unchanged) and nothing it names is ever fetched (a canary route counts requests); the
site page's audit pack is downloaded by the browser itself and verified.
The overview's screenshot is written to docs/screenshots/overview.png (the README shows it).
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select

from scanner.service.api import Service
from scanner.service.api.app import asgi
from scanner.service.auth import add_user
from scanner.service.store.db import Database, migrate
from scanner.service.store.models import AuditEntry, Device
from tests.chromium import FLAGS as BASE_FLAGS
from tests.chromium import chromium_path, png_size
from tests.service.web_demo import seed_demo

websockets_sync = pytest.importorskip("websockets.sync.client")

FLAGS = [
    *BASE_FLAGS,
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--window-size=1280,900",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "overview.png"
SEEDED_AT = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
EMAIL, PASSWORD = "security.lead@council.example", "a long and private passphrase"


# ---- the service on loopback, with a canary ----------------------------------------------------------------


@dataclass
class Served:
    url: str
    db: Database
    canary: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    url = f"sqlite:///{tmp_path_factory.mktemp('web') / 'camscan.db'}"
    migrate(url)
    db = Database.open(url)
    seed_demo(db, now=SEEDED_AT)  # a fixed time, so that the committed screenshot changes only with the pages
    with db.session() as s:
        add_user(s, EMAIL, "operator", PASSWORD, created_by="test")
    inner = asgi(Service(db))
    port = _free_port()
    result = Served(f"http://127.0.0.1:{port}", db)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/canary"):
            result.canary.append(scope["path"])
        await inner(scope, receive, send)

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="cwb-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield result
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        db.close()


# ---- a small DevTools protocol client ----------------------------------------------------------------------


class Browser:
    """One Chromium page, driven over the DevTools protocol (a WebSocket on 127.0.0.1)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def js(self, expression: str) -> Any:
        """The value of an expression in the page (the driver's own evaluation, not page script)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def _mark(self) -> None:
        self.js("window.__cwbOld = true")

    def _wait_new_page(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.js("window.__cwbOld === undefined && document.readyState === 'complete'"):
                    return
            except RuntimeError:  # the old page's context went away mid-evaluation
                pass
            time.sleep(0.05)
        raise AssertionError("the page did not load")

    def go(self, url: str) -> None:
        self._mark()
        self.call("Page.navigate", url=url)
        self._wait_new_page()

    def click(self, selector: str) -> None:
        """Click an element that loads a new page (a link or a form's button)."""
        self._mark()
        assert self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                       f"if (!e) return false; e.click(); return true; }})()"), selector  # fmt: skip
        self._wait_new_page()

    def fill(self, selector: str, value: str) -> None:
        assert self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return false; "
                       f"e.value = {json.dumps(value)}; return true; }})()"), selector  # fmt: skip

    def path(self) -> str:
        return str(self.js("location.pathname + location.search"))

    def text(self, selector: str = "body") -> str:
        return str(self.js(f"document.querySelector({json.dumps(selector)})?.textContent ?? ''"))

    def screenshot(self, out: Path, width: int = 1280) -> bytes:
        height = int(self.js("Math.ceil(document.documentElement.scrollHeight)"))
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        try:
            import base64

            data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        finally:
            self.call("Emulation.clearDeviceMetricsOverride")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        return data


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with tempfile.TemporaryDirectory(prefix="cwb-chromium-") as profile, tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [chromium_path(), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            active = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 60
            while not (active.exists() and len(active.read_text().splitlines()) >= 2):
                if proc.poll() is not None:
                    log.seek(0)
                    pytest.fail("chromium exited: " + log.read().decode(errors="replace")[-2000:])
                assert time.monotonic() < deadline, "chromium did not open its DevTools port"
                time.sleep(0.1)
            port = int(active.read_text().splitlines()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:  # loopback
                targets = json.load(r)
            page = next(t for t in targets if t["type"] == "page")
            with websockets_sync.connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as ws:
                b = Browser(ws)
                b.call("Page.enable")
                b.call("Runtime.enable")
                yield b
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ---- the walk --------------------------------------------------------------------------------------------------


def test_log_in_see_flagged_devices_and_the_chart_plan_a_replacement(served: Served, browser: Browser) -> None:
    browser.go(served.url + "/")
    assert browser.path() == "/login?next=/"  # not logged in: sent to the login form
    browser.fill("#email", EMAIL)
    browser.fill("#password", PASSWORD)
    browser.click("form.stack button[type=submit]")
    assert browser.path() == "/"

    # the overview: every site, the town hall's flagged devices, the chart, the stylesheet applied under the CSP
    sites = browser.text("#sites")
    assert "Town Hall" in sites and "Central Library" in sites and "Leisure Centre" in sites
    link = 'a.flagged-count[href^="/sites/town-hall?"]'
    flagged = int(browser.js(f"Number(document.querySelector({json.dumps(link)}).textContent)"))
    assert flagged >= 1
    assert browser.js("document.querySelectorAll('svg.chart-svg g.series').length") == 3
    assert browser.js("document.querySelector('svg.chart-svg').getBoundingClientRect().width") > 400
    assert browser.js("getComputedStyle(document.querySelector('header.top')).backgroundColor") == "rgb(11, 31, 58)"
    shot = browser.screenshot(SCREENSHOT)
    width, height = png_size(shot)
    assert width == 1280 and height > 600 and len(shot) > 40_000  # a real page, not a blank one

    # printed: the navigation and forms are left out, the chart and tables stay
    browser.call("Emulation.setEmulatedMedia", media="print")
    assert browser.js("getComputedStyle(document.querySelector('header.top')).display") == "none"
    assert browser.js("getComputedStyle(document.querySelector('svg.chart-svg')).display") != "none"
    browser.call("Emulation.setEmulatedMedia", media="")

    # a flagged device of the town hall, through the overview's link
    browser.click(link)
    assert browser.path() == "/sites/town-hall?flagged=yes&status=present"
    rows = int(browser.js("document.querySelectorAll('#devices tbody tr.is-flagged').length"))
    assert rows == flagged
    device_path = str(browser.js("document.querySelector('#devices tbody tr.is-flagged a').getAttribute('href')"))
    browser.click("#devices tbody tr.is-flagged a")
    assert browser.path() == device_path
    assert "flagged" in browser.text("main h1 + p")
    assert browser.js("document.querySelectorAll('#findings tbody tr').length") >= 1

    # plan its replacement
    browser.fill("#replacement_due", "2027-03-31")
    browser.fill("#replacement_owner", "Facilities (J. Smith)")
    browser.fill("#plan_note", "Axis replacement ordered")
    browser.click("#plan-form button[type=submit]")
    assert browser.path().startswith(device_path + "?saved=1")
    assert "Saved." in browser.text("#lifecycle")
    assert "replacement planned" in browser.text("#lifecycle")
    device_id = int(device_path.rsplit("/", 1)[1])
    with served.db.session() as s:
        d = s.get(Device, device_id)
        assert d is not None and d.lifecycle == "replacement_planned" and str(d.replacement_due) == "2027-03-31"
        entry = s.scalars(select(AuditEntry).where(AuditEntry.target == f"device:{device_id}")).one()
        assert entry.actor == f"user:{EMAIL}" and entry.action == "device.lifecycle"

    # log out: the session is gone, the overview asks for a login again
    browser.click("form[action='/logout'] button")
    assert browser.path() == "/login"
    browser.go(served.url + "/")
    assert browser.path().startswith("/login")


def test_script_in_a_device_name_never_runs(served: Served, browser: Browser) -> None:
    browser.go(served.url + "/login")
    browser.fill("#email", EMAIL)
    browser.fill("#password", PASSWORD)
    browser.click("form.stack button[type=submit]")
    with served.db.session() as s:
        hostile = s.scalars(select(Device.id).where(Device.ip == "10.77.0.99")).one()
    for path in (f"/devices/{hostile}", "/sites/town-hall?sort=ip", "/"):
        browser.go(served.url + path)
        assert browser.path() == path
        assert "pwned" not in str(browser.js("document.title")), path
        assert browser.js("document.querySelectorAll('script, img, iframe, object, embed').length") == 0, path
        assert browser.js("document.querySelectorAll('svg [onload]').length") == 0, path
    browser.go(served.url + f"/devices/{hostile}")
    assert "<script>document.title='pwned';fetch('/canary/script')</script>" in browser.text("main")  # shown as text
    assert served.canary == []  # no script fetched it, no image or SVG element asked for it


def test_download_the_audit_pack_from_the_site_page(served: Served, browser: Browser, tmp_path: Path) -> None:
    """The site page's Audit pack button, clicked in Chromium: the browser saves the zip (DevTools download
    behaviour into a temporary directory) and camscan's own verification accepts it."""
    from scanner.report.pack import verify_pack

    browser.go(served.url + "/login")
    browser.fill("#email", EMAIL)
    browser.fill("#password", PASSWORD)
    browser.click("form.stack button[type=submit]")
    browser.go(served.url + "/sites/town-hall")
    button = "a.button[href='/sites/town-hall#panel-audit-pack']"  # the header's button, to the panel
    assert browser.js(f"document.querySelector({json.dumps(button)})?.textContent") == "Audit pack"
    assert "Download" in browser.text("#panel-audit-pack")
    for panel in ("#panel-register-reconciliation", "#panel-alert-rules"):
        assert browser.js(f"document.querySelector({json.dumps(panel)}) !== null"), panel
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads), eventsEnabled=True)
    try:
        browser.fill("#audit-pack-form input[name=from]", "")  # no limit: the demo's scans are at a fixed date
        browser.fill("#audit-pack-form input[name=to]", "")
        assert browser.js("(() => { document.querySelector('#audit-pack-form button[type=submit]').click(); "
                          "return true; })()")  # fmt: skip
        deadline = time.monotonic() + 60
        done: list[Path] = []
        while not done:
            assert time.monotonic() < deadline, f"no download finished: {sorted(downloads.iterdir())}"
            time.sleep(0.1)
            names = list(downloads.iterdir())
            if not any(p.suffix == ".crdownload" for p in names):
                done = [p for p in names if p.suffix == ".zip"]
    finally:
        browser.call("Browser.setDownloadBehavior", behavior="default")
    [pack] = done
    assert pack.name == "camscan-audit-town-hall-start-now.zip"
    check = verify_pack(pack)
    assert check.ok, check.problems
    assert check.reports >= 1 and check.manifest["site"] == "town-hall"
    assert browser.path() == "/sites/town-hall"  # the download left the page where it was
