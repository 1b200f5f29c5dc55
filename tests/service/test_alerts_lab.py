"""Alerts end to end in the netns lab (root): `camscan serve` runs in the lab's scanner namespace with a
site on a one-minute schedule; after the first scheduled scan, alert rules are made (a signed webhook for
device.flagged, a summary mail for every event); a flagged persona (the Dahua dome) joins the LAN, and
after the next scheduled scan the webhook receiver has exactly one signed device.flagged delivery naming
it, and the SMTP server exactly one summary mail naming it.

The receivers run in this test process but listen inside the scanner namespace (tests/service/sinks.py
`in_namespace`), on its loopback, where the service can reach them and nothing else can. This lab's
namespaces are named with the prefix `cal-`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner.lab import control
from tests.lab.conftest import needs_netns, stop_process
from tests.service.sinks import SmtpSink, WebhookSink, in_namespace, smtp_sink, webhook_sink
from tests.service.test_lab_e2e import LabService, bring_online, persona, take_offline

pytestmark = needs_netns
PERSONAS = ["hik-bullet", "axis-m1065", "dahua-dome"]
JOINS = "dahua-dome"
SECRET = "lab-secret-0123456789"
PREFIX = "cal-"


class AlertLab(LabService):
    def serve_with_smtp(self, smtp: SmtpSink) -> None:
        """`serve` with the SMTP options (the environment carries them to the command line's envvars)."""
        self.env = {**self.env, "CAMSCAN_SMTP_HOST": smtp.host, "CAMSCAN_SMTP_PORT": str(smtp.port),
                    "CAMSCAN_SMTP_FROM": "camscan@lab.invalid"}  # fmt: skip
        self.serve()


@contextlib.contextmanager
def lab_prefix() -> Iterator[None]:
    """Build and remove this lab's namespaces under our own prefix (parallel labs never meet)."""
    before = control.PREFIX
    control.PREFIX = PREFIX
    try:
        yield
    finally:
        control.PREFIX = before


@pytest.fixture(scope="module")
def alert_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AlertLab, WebhookSink, SmtpSink]]:
    tmp = tmp_path_factory.mktemp("alert-lab")
    with lab_prefix():
        state = control.up("netns", state_dir=tmp / "lab", only=PERSONAS)
    svc = AlertLab(state, tmp)
    sinks = contextlib.ExitStack()
    try:
        assert state.scanner_namespace is not None and state.scanner_namespace.startswith(PREFIX)
        take_offline(state, JOINS)
        hook = in_namespace(state.scanner_namespace, lambda: sinks.enter_context(webhook_sink()))
        mail = in_namespace(state.scanner_namespace, lambda: sinks.enter_context(smtp_sink()))
        svc.add_admin_and_site("Lab")
        svc.serve_with_smtp(mail)
        yield svc, hook, mail
    finally:
        for proc in svc.procs:
            stop_process(proc)
        sinks.close()
        with lab_prefix():
            control.down(tmp / "lab")


def wait_for(what: str, predicate: Any, timeout: float, svc: LabService) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert svc.service.poll() is None, (svc.tmp / "serve.log").read_text()[-3000:]
        assert time.monotonic() < deadline, f"{what}: " + (svc.tmp / "serve.log").read_text()[-3000:]
        time.sleep(1)


def test_a_flagged_device_joining_between_two_scheduled_scans_alerts_once(
    alert_lab: tuple[AlertLab, WebhookSink, SmtpSink], tmp_path: Path
) -> None:
    svc, hook, mail = alert_lab
    first = svc.wait_scan(lambda s: s["trigger"] == "schedule" and s["status"] in ("succeeded", "failed"), 200)
    assert first["status"] == "succeeded", first
    for body in ({"event": "device.flagged", "site": "lab", "webhook": {"url": hook.url, "secret": SECRET}},
                 {"event": "*", "site": "lab", "email": ["security@council.example"]}):  # fmt: skip
        status, made = svc.call("POST", "/api/v1/alert-rules", body)
        assert status == 201, made
    dahua = persona(svc.state, JOINS)
    svc.procs.append(bring_online(svc.state, JOINS, tmp_path))
    # the next scheduled scan that sees the dome (one may have started before it came up) alerts
    wait_for("the webhook delivery", lambda: len(hook.requests) >= 1, 300, svc)
    wait_for("the summary mail", lambda: len(mail.messages) >= 1, 60, svc)
    time.sleep(3)  # anything the same scan would wrongly add has arrived by now (the worker runs every 2 s)
    (got,) = hook.requests
    expected = "sha256=" + hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(got.headers["x-camscan-signature"], expected)
    doc = json.loads(got.body)
    status, second = svc.call("GET", f"/api/v1/scans/{doc['scan']}")
    assert status == 200 and second["trigger"] == "schedule" and second["status"] == "succeeded"
    assert second["id"] != first["id"]
    assert (doc["event"], doc["site"]) == ("device.flagged", "lab")
    assert [(d["ip"], d["mac"]) for d in doc["devices"]] == [(dahua.ip, dahua.mac)]
    assert any(f["rule"] for f in doc["devices"][0]["findings"])
    summaries = [m for m in mail.messages if second["id"] in m.get_content()]
    assert len(summaries) == 1
    body = summaries[0].get_content()
    assert dahua.ip in body and "device.flagged" in body and "device.new" in body
    status, deliveries = svc.call("GET", "/api/v1/alerts?site=lab")
    assert status == 200
    assert all(d["status"] == "delivered" for d in deliveries["items"]), deliveries
