"""Alerts on SQLite and PostgreSQL: rules through the API, events derived in the ingest's transaction, a
real webhook receiver checking the HMAC signature, retries with every attempt recorded, and one summary
mail per scan to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from sqlalchemy import func, select

from scanner.service.alerts import DeliverySettings, SmtpSettings, deliver_due, emit_event
from scanner.service.ingest import ingest_report
from scanner.service.store.models import AlertDelivery, AlertEvent, AuditEntry, Device, Site
from tests.report_fixtures import SCRIPT
from tests.service.conftest import AXIS, HIK, Api, Dev, day, make_report
from tests.service.sinks import smtp_sink, webhook_sink

SECRET = "s3cret-s3cret-s3cret"
AXIS_CAM = Dev("10.77.0.11", "00:40:8c:00:00:11", tuple(AXIS))
HIK_CAM = Dev("10.77.0.10", "28:57:be:00:00:10", tuple(HIK))


def ingest(api: Api, raw: bytes, slug: str = "town-hall") -> str:
    with api.db.session() as s:
        site = s.scalars(select(Site).where(Site.slug == slug)).one()
        return ingest_report(s, site, raw).scan_id


def rule(api: Api, body: dict[str, Any], who: str = "operator") -> dict[str, Any]:
    r = api.client.post("/api/v1/alert-rules", json=body, headers=api.as_(who))
    assert r.status_code == 201, r.text
    return dict(r.json())


def fast(smtp: SmtpSettings | None = None) -> DeliverySettings:
    return DeliverySettings(smtp=smtp or SmtpSettings(), backoff=0.0, lease=0.0, timeout=5.0)


# ---- rules --------------------------------------------------------------------------------------------


def test_rules_are_created_listed_without_secret_and_deleted(api: Api) -> None:
    made = rule(api, {"event": "device.flagged", "site": "town-hall",
                      "webhook": {"url": "https://hooks.example.org/x", "secret": SECRET}})  # fmt: skip
    assert made["webhook"] == {"url": "https://hooks.example.org/x", "secret_set": True}
    listed = api.client.get("/api/v1/alert-rules", headers=api.as_("auditor")).json()["items"]
    assert [r["id"] for r in listed] == [made["id"]]
    assert SECRET not in json.dumps(listed)
    assert api.client.delete(f"/api/v1/alert-rules/{made['id']}", headers=api.as_("auditor")).status_code == 403
    assert api.client.delete(f"/api/v1/alert-rules/{made['id']}", headers=api.as_("operator")).status_code == 204
    assert api.client.get(f"/api/v1/alert-rules/{made['id']}", headers=api.as_("admin")).status_code == 404
    with api.db.session() as s:
        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.action.like("alert_rule.%"))))
        assert actions == ["alert_rule.create", "alert_rule.delete"]
        assert SECRET not in json.dumps([e.detail for e in s.scalars(select(AuditEntry))])


@pytest.mark.parametrize(
    "body",
    [
        {"event": "device.flagged", "webhook": {"url": "file:///etc/passwd", "secret": SECRET}},
        {"event": "device.flagged", "webhook": {"url": "javascript:alert(1)", "secret": SECRET}},
        {"event": "device.flagged", "webhook": {"url": "ftp://example.org/x", "secret": SECRET}},
        {"event": "device.flagged", "webhook": {"url": "/relative/path", "secret": SECRET}},
        {"event": "device.flagged", "webhook": {"url": "http://exa mple.org/", "secret": SECRET}},
        {"event": "device.flagged", "webhook": {"url": "https://example.org/", "secret": "short"}},
        {"event": "device.exploded", "email": ["a@example.org"]},
        {"event": "device.flagged"},
        {"event": "device.flagged", "email": ["not an address"]},
        {"event": "device.flagged", "email": ["a@example.org\r\nBcc: b@example.org"]},
        {"event": "device.flagged", "email": ["a@example.org"], "extra": 1},
    ],
    ids=[
        "file",
        "javascript",
        "ftp",
        "relative",
        "space",
        "short-secret",
        "unknown-event",
        "no-target",
        "bad-email",
        "header-injection",
        "extra-field",
    ],
)
def test_bad_rules_are_refused(api: Api, body: dict[str, Any]) -> None:
    r = api.client.post("/api/v1/alert-rules", json=body, headers=api.as_("operator"))
    assert r.status_code == 422, r.text
    assert api.client.get("/api/v1/alert-rules", headers=api.as_("admin")).json()["items"] == []


def test_a_site_token_makes_rules_for_its_site_only(api: Api) -> None:
    body = {"event": "*", "email": ["ops@example.org"]}
    assert api.client.post("/api/v1/alert-rules", json=body, headers=api.as_("annex-operator")).status_code == 403
    r = api.client.post("/api/v1/alert-rules", json={**body, "site": "town-hall"}, headers=api.as_("annex-operator"))
    assert r.status_code == 403
    r = api.client.post("/api/v1/alert-rules", json={**body, "site": "annex"}, headers=api.as_("annex-operator"))
    assert r.status_code == 201


# ---- webhook -----------------------------------------------------------------------------------------


def test_a_newly_flagged_device_gives_one_signed_webhook_delivery(api: Api) -> None:
    with webhook_sink() as sink:
        rule(api, {"event": "device.flagged", "site": "town-hall", "webhook": {"url": sink.url, "secret": SECRET}})
        ingest(api, make_report([AXIS_CAM], day(0)))
        scan = ingest(api, make_report([AXIS_CAM, HIK_CAM], day(1)))
        ingest(api, make_report([AXIS_CAM, HIK_CAM], day(2)))  # still flagged: no second alert
        assert deliver_due(api.db, fast()) == 1
        assert deliver_due(api.db, fast()) == 0
        assert len(sink.requests) == 1
        got = sink.requests[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(got.headers["x-camscan-signature"], expected)
    assert got.headers["content-type"] == "application/json"
    doc = json.loads(got.body)
    assert set(doc) == {"event", "site", "scan", "occurred_at", "devices"}
    assert (doc["event"], doc["site"], doc["scan"]) == ("device.flagged", "town-hall", scan)
    (dev,) = doc["devices"]
    assert set(dev) == {"id", "ip", "mac", "manufacturer", "brand", "model", "findings"}
    assert (dev["ip"], dev["mac"], dev["manufacturer"]) == ("10.77.0.10", "28:57:be:00:00:10", "Hikvision")
    assert {"pack": "us-ndaa-889", "rule": "hikvision-equipment", "severity": "high"} in dev["findings"] or any(
        f["pack"] == "us-ndaa-889" and f["rule"] == "hikvision-equipment" for f in dev["findings"]
    )
    listed = api.client.get("/api/v1/alerts", headers=api.as_("auditor")).json()["items"]
    assert len(listed) == 1 and listed[0]["status"] == "delivered"
    assert [a["status_code"] for a in listed[0]["attempts"]] == [204]


def test_a_receiver_that_fails_twice_gets_the_delivery_on_the_third_attempt(api: Api) -> None:
    with webhook_sink(fail_first=2) as sink:
        rule(api, {"event": "device.new", "webhook": {"url": sink.url, "secret": SECRET}})
        ingest(api, make_report([HIK_CAM], day(0)))
        for _ in range(3):
            assert deliver_due(api.db, fast()) == 1
        assert deliver_due(api.db, fast()) == 0
        bodies = [r.body for r in sink.requests]
    assert len(bodies) == 3 and len(set(bodies)) == 1  # the same signed body each time
    (delivery,) = api.client.get("/api/v1/alerts", headers=api.as_("admin")).json()["items"]
    assert delivery["status"] == "delivered"
    assert [(a["ok"], a["status_code"]) for a in delivery["attempts"]] == [(False, 500), (False, 500), (True, 204)]
    assert delivery["events"][0]["event"] == "device.new"


def test_backoff_doubles_and_a_delivery_fails_for_good_after_max_attempts(api: Api) -> None:
    from scanner.service.alerts import backoff_delay

    settings = DeliverySettings(backoff=30.0)
    assert [backoff_delay(n, settings) for n in (1, 2, 3, 4)] == [30.0, 60.0, 120.0, 240.0]
    with webhook_sink(fail_first=99) as sink:
        rule(api, {"event": "device.new", "webhook": {"url": sink.url, "secret": SECRET}})
        ingest(api, make_report([HIK_CAM], day(0)))
        limited = DeliverySettings(backoff=0.0, lease=0.0, max_attempts=3)
        while deliver_due(api.db, limited):
            pass
    (delivery,) = api.client.get("/api/v1/alerts?status=failed", headers=api.as_("admin")).json()["items"]
    assert len(delivery["attempts"]) == 3 and delivery["last_error"] == "HTTP 500"


def test_an_unreachable_receiver_is_an_attempt_not_a_crash(api: Api) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rule(api, {"event": "device.new", "webhook": {"url": f"http://127.0.0.1:{port}/", "secret": SECRET}})
    ingest(api, make_report([HIK_CAM], day(0)))
    assert deliver_due(api.db, fast()) == 1
    (delivery,) = api.client.get("/api/v1/alerts", headers=api.as_("admin")).json()["items"]
    assert delivery["status"] == "pending" and "ConnectionRefused" in delivery["attempts"][0]["error"]


def test_events_are_written_in_the_ingest_transaction(api: Api) -> None:
    rule(api, {"event": "*", "webhook": {"url": "http://127.0.0.1:9/", "secret": SECRET}})

    class Crash(Exception):
        pass

    with pytest.raises(Crash), api.db.session() as s:
        site = s.scalars(select(Site).where(Site.slug == "town-hall")).one()
        ingest_report(s, site, make_report([HIK_CAM], day(0)))
        assert s.scalar(select(func.count()).select_from(AlertEvent)) == 3  # new, flagged, finding.new
        raise Crash  # the process dies before commit: no report, no event, no delivery
    with api.db.session() as s:
        assert s.scalar(select(func.count()).select_from(AlertEvent)) == 0
        assert s.scalar(select(func.count()).select_from(AlertDelivery)) == 0
    ingest(api, make_report([HIK_CAM], day(0)))
    with api.db.session() as s:
        events = sorted(s.scalars(select(AlertEvent.event)))
        assert events == ["device.flagged", "device.new", "finding.new"]
        assert s.scalar(select(func.count()).select_from(AlertDelivery)) == 3


def test_gone_and_resolved_events(api: Api) -> None:
    ingest(api, make_report([AXIS_CAM, HIK_CAM], day(0)))
    ingest(api, make_report([AXIS_CAM], day(1)))
    with api.db.session() as s:
        rows = {e.event: e for e in s.scalars(select(AlertEvent).where(AlertEvent.occurred_at == day(1)))}
    assert set(rows) == {"device.gone"}  # a gone device keeps its findings open: it may be unplugged only
    assert [d["ip"] for d in rows["device.gone"].devices] == ["10.77.0.10"]


def test_hostile_device_strings_stay_data_in_the_webhook_body(api: Api) -> None:
    hostile = '"}\r\n{"event":"x"}' + SCRIPT + "\u2028\x00"
    with webhook_sink() as sink:
        rule(api, {"event": "agent.offline", "webhook": {"url": sink.url, "secret": SECRET}})
        with api.db.session() as s:
            site = s.scalars(select(Site).where(Site.slug == "town-hall")).one()
            emit_event(s, site, "agent.offline", detail={"agent": hostile},
                       devices=[{"id": 1, "ip": "10.77.0.9", "mac": None, "manufacturer": hostile, "brand": None,
                                 "model": hostile, "findings": []}])  # fmt: skip
        deliver_due(api.db, fast())
        (got,) = sink.requests
    doc = json.loads(got.body)
    assert doc["event"] == "agent.offline"
    kept = hostile.replace("\x00", "")  # the one character a database cannot keep
    assert doc["devices"][0]["model"] == kept and doc["detail"]["agent"] == kept


# ---- email -------------------------------------------------------------------------------------------


def test_one_summary_mail_per_scan_names_the_flagged_device(api: Api) -> None:
    with smtp_sink() as smtp:
        rule(api, {"event": "*", "site": "town-hall", "email": ["security@example.org", "ops@example.org"]})
        ingest(api, make_report([AXIS_CAM], day(0)))
        settings = fast(SmtpSettings(host=smtp.host, port=smtp.port, sender="camscan@example.org"))
        deliver_due(api.db, settings)
        smtp.messages.clear()
        scan = ingest(api, make_report([AXIS_CAM, HIK_CAM, Dev("10.77.0.12", "28:57:be:00:00:12", tuple(HIK))], day(1)))
        assert deliver_due(api.db, settings) == 1
        (mail,) = smtp.messages
        (envelope,) = smtp.envelopes[-1:]
    assert envelope == ("camscan@example.org", ["security@example.org", "ops@example.org"])
    assert mail["Subject"].startswith("camscan: town-hall:")
    body = mail.get_content()
    assert scan in body
    assert "device.flagged" in body and "device.new" in body and "finding.new" in body
    assert "10.77.0.10" in body and "10.77.0.12" in body and "Hikvision" in body
    assert "us-ndaa-889/hikvision-equipment" in body
    assert mail.get_content_type() == "text/plain"


def test_hostile_strings_in_mail_stay_in_the_body_escaped(api: Api) -> None:
    with smtp_sink() as smtp:
        rule(api, {"event": "agent.offline", "email": ["security@example.org"]})
        with api.db.session() as s:
            site = s.scalars(select(Site).where(Site.slug == "town-hall")).one()
            site.name = "Town\r\nBcc: evil@example.org"
            emit_event(s, site, "agent.offline",
                       devices=[{"id": 1, "ip": "10.77.0.9", "mac": None, "manufacturer": "X\r\nBcc: evil@example.org",
                                 "brand": None, "model": SCRIPT, "findings": []}])  # fmt: skip
        deliver_due(api.db, fast(SmtpSettings(host=smtp.host, port=smtp.port)))
        (mail,) = smtp.messages
        rcpts = smtp.envelopes[0][1]
    assert rcpts == ["security@example.org"]
    assert mail["Bcc"] is None
    body = mail.get_content()
    assert "X\\r\\nBcc: evil@example.org" in body and SCRIPT in body


def test_mail_without_an_smtp_server_is_a_recorded_failure(api: Api) -> None:
    rule(api, {"event": "device.new", "email": ["security@example.org"]})
    ingest(api, make_report([HIK_CAM], day(0)))
    deliver_due(api.db, fast())
    (delivery,) = api.client.get("/api/v1/alerts", headers=api.as_("admin")).json()["items"]
    assert delivery["channel"] == "email" and "no SMTP server configured" in delivery["attempts"][0]["error"]


def test_scan_failed_is_emitted_when_the_scheduler_records_a_failure(api: Api, tmp_path: Any) -> None:
    from scanner.service.jobs import JobOutcome
    from scanner.service.scheduler import Scheduler
    from scanner.service.store.models import Scan

    with webhook_sink() as sink:
        rule(api, {"event": "scan.failed", "webhook": {"url": sink.url, "secret": SECRET}})
        r = api.client.post("/api/v1/sites/town-hall/scans", headers=api.as_("operator"))
        scan_id = r.json()["id"]
        with api.db.session() as s:
            s.get(Scan, scan_id).status = "running"  # type: ignore[union-attr]
        scheduler = Scheduler(api.db, None, None)  # type: ignore[arg-type]  # _record needs neither
        scheduler._record(JobOutcome(scan_id=scan_id, ok=False, error="scanner crashed"))
        deliver_due(api.db, fast())
        (got,) = sink.requests
    doc = json.loads(got.body)
    assert (doc["event"], doc["scan"], doc["devices"]) == ("scan.failed", scan_id, [])
    assert doc["detail"]["error"] == "scanner crashed"


def test_device_ids_in_alerts_are_the_api_ids(api: Api) -> None:
    with webhook_sink() as sink:
        rule(api, {"event": "device.new", "webhook": {"url": sink.url, "secret": SECRET}})
        ingest(api, make_report([HIK_CAM], day(0)))
        deliver_due(api.db, fast())
        (got,) = sink.requests
    (dev,) = json.loads(got.body)["devices"]
    with api.db.session() as s:
        assert s.scalar(select(Device.id).where(Device.mac == "28:57:be:00:00:10")) == dev["id"]
    assert api.client.get(f"/api/v1/devices/{dev['id']}", headers=api.as_("auditor")).status_code == 200


def test_mail_over_starttls_with_a_login(api: Api, tmp_path: Any) -> None:
    import ssl

    from scanner.lab.certs import make_certificate

    cert, key = make_certificate(None, "smtp.test", tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=cert)
    client_tls.check_hostname = False  # the test certificate names no address; the chain is still checked
    rule(api, {"event": "device.new", "email": ["security@example.org"]})
    ingest(api, make_report([HIK_CAM], day(0)))
    with smtp_sink(tls=server_tls, login=("camscan", "correct horse")) as smtp:
        plain = fast(SmtpSettings(host=smtp.host, port=smtp.port, username="camscan", password="correct horse"))
        deliver_due(api.db, plain)  # without STARTTLS the server refuses the login
        assert smtp.messages == []
        wrong = fast(SmtpSettings(host=smtp.host, port=smtp.port, starttls=True, username="camscan", password="x"))
        wrong.ssl_context = client_tls
        deliver_due(api.db, wrong)
        assert smtp.messages == []
        good = fast(SmtpSettings(host=smtp.host, port=smtp.port, starttls=True, username="camscan",
                                 password="correct horse"))  # fmt: skip
        good.ssl_context = client_tls
        deliver_due(api.db, good)
        (mail,) = smtp.messages
        assert smtp.sessions == [{"tls": True, "login": "camscan"}]
    assert "10.77.0.10" in mail.get_content()
    (delivery,) = api.client.get("/api/v1/alerts", headers=api.as_("admin")).json()["items"]
    assert [a["ok"] for a in delivery["attempts"]] == [False, False, True]
    assert "Authentication" in (delivery["attempts"][1]["error"] or "") or delivery["attempts"][1]["status_code"] == 535


def test_a_deleted_rule_fails_its_pending_deliveries_once(api: Api) -> None:
    made = rule(api, {"event": "device.new", "webhook": {"url": "http://127.0.0.1:9/", "secret": SECRET}})
    ingest(api, make_report([HIK_CAM], day(0)))
    assert api.client.delete(f"/api/v1/alert-rules/{made['id']}", headers=api.as_("operator")).status_code == 204
    assert deliver_due(api.db, fast()) == 1
    assert deliver_due(api.db, fast()) == 0
    (delivery,) = api.client.get("/api/v1/alerts", headers=api.as_("admin")).json()["items"]
    assert (delivery["status"], delivery["rule"]) == ("failed", None)
    assert delivery["last_error"] == "the alert rule was deleted"


def test_finding_resolved_names_the_resolved_finding_only(api: Api) -> None:
    ingest(api, make_report([HIK_CAM], day(0)))
    no_web = Dev(HIK_CAM.ip, HIK_CAM.mac, (("sadp.device_type", "DS-2CD2143G0-I"),))  # the web server is off now
    scan = ingest(api, make_report([no_web], day(1)))
    with api.db.session() as s:
        rows = {e.event: e for e in s.scalars(select(AlertEvent).where(AlertEvent.scan_id == scan))}
    assert set(rows) == {"finding.resolved"}
    (dev,) = rows["finding.resolved"].devices
    assert dev["ip"] == HIK_CAM.ip
    assert [(f["pack"], f["rule"]) for f in dev["findings"]] == [("camera-risk", "http-no-tls")]


NEW_ROUTES = [
    ("POST", "/api/v1/alert-rules"),
    ("GET", "/api/v1/alert-rules"),
    ("GET", "/api/v1/alert-rules/1"),
    ("DELETE", "/api/v1/alert-rules/1"),
    ("GET", "/api/v1/alerts"),
    ("POST", "/api/v1/sites/town-hall/register"),
    ("GET", "/api/v1/sites/town-hall/register"),
    ("GET", "/api/v1/sites/town-hall/reconciliation"),
    ("GET", "/api/v1/export?site=town-hall"),
]


@pytest.mark.parametrize(("method", "path"), NEW_ROUTES, ids=[f"{m} {p}" for m, p in NEW_ROUTES])
def test_part_two_routes_need_a_token_and_are_in_the_openapi(api: Api, method: str, path: str) -> None:
    assert api.client.request(method, path).status_code == 401
    bad = {"Authorization": "Bearer cst_not-a-token"}
    assert api.client.request(method, path, headers=bad).status_code == 401
    paths = api.client.get("/api/openapi.json").json()["paths"]
    template = path.split("?")[0].replace("/1", "/{rule_id}").replace("town-hall", "{slug}")
    assert template in paths, template


def test_agent_offline_raised_by_the_agents_part_reaches_its_alert_rules(api: Api) -> None:
    from scanner.service.events import AGENT_OFFLINE, record_event

    with webhook_sink() as sink:
        rule(api, {"event": "agent.offline", "site": "town-hall", "webhook": {"url": sink.url, "secret": SECRET}})
        with api.db.session() as s:
            site = s.scalars(select(Site).where(Site.slug == "town-hall")).one()
            record_event(s, AGENT_OFFLINE, site=site,
                         detail={"agent": "th-1", "last_contact": None, "reason": "no heartbeat"})  # fmt: skip
        assert deliver_due(api.db, fast()) == 1
        (got,) = sink.requests
    doc = json.loads(got.body)
    assert (doc["event"], doc["site"], doc["scan"], doc["devices"]) == ("agent.offline", "town-hall", None, [])
    assert doc["detail"]["agent"] == "th-1" and doc["detail"]["reason"] == "no heartbeat"
