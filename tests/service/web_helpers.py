"""Shared by the page tests: a seeded service (sites, real reports, people of every role) and logging in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select

from scanner.service.api import Service
from scanner.service.api.app import asgi
from scanner.service.auth import add_user
from scanner.service.ingest import ingest_report
from scanner.service.store.db import Database
from scanner.service.store.models import Device, Site, UserSite
from tests.report_fixtures import SCRIPT
from tests.service.conftest import AXIS, HIK, Dev, TestClient, add_site, day, make_report

PASSWORD = "correct horse battery staple"
PEOPLE = {
    "admin@council.example": "admin",
    "operator@council.example": "operator",
    "auditor@council.example": "auditor",
    "annex@council.example": "operator",  # limited to the site `annex`
}
HOSTILE_SITE = "Depot <script>document.title='pwned'</script> \"quoted\" ünïcode ☃"
#: A device whose strings try to run script (model, firmware via the evidence; the HTTP title too)
HOSTILE = Dev(
    "10.77.0.66",
    "00:12:12:66:66:66",
    (
        ("onvif.manufacturer", SCRIPT),
        ("onvif.model", SCRIPT),
        ("onvif.firmware", "\"'><svg onload=alert(1)>"),
        ("http.title", SCRIPT),
        ("hostname", "ünïcode-\u202ecam"),
    ),
)


@dataclass
class Seeded:
    db: Database
    town_hall: int = 0
    annex: int = 0
    depot: int = 0
    scans: list[str] = field(default_factory=list)
    hik: int = 0  # a flagged Hikvision camera at the town hall
    axis: int = 0
    hostile: int = 0
    annex_device: int = 0


def seed(db: Database) -> Seeded:
    """Three sites; the town hall scanned three times (a Hikvision appears in the second scan), the annex
    once, the depot (a hostile name) once with a hostile device; people of every role."""
    out = Seeded(db)
    out.town_hall = add_site(db, "town-hall")
    out.annex = add_site(db, "annex", ("10.78.0.0/24",))
    out.depot = add_site(db, "depot", ("10.79.0.0/24",))
    hik = Dev("10.77.0.11", "44:19:b6:00:00:11", tuple(HIK))
    axis = Dev("10.77.0.20", "00:40:8c:00:00:20", tuple(AXIS))
    annex_cam = Dev("10.78.0.5", "44:19:b6:00:00:55", tuple(HIK))
    with db.session() as s:
        site = s.get(Site, out.town_hall)
        assert site is not None
        for n, devices in enumerate(([axis], [axis, hik], [axis, hik])):
            out.scans.append(ingest_report(s, site, make_report(devices, day(n))).scan_id)
        annex = s.get(Site, out.annex)
        depot = s.get(Site, out.depot)
        assert annex is not None and depot is not None
        depot.name = HOSTILE_SITE
        ingest_report(s, annex, make_report([annex_cam], day(1), site="Annex"))
        ingest_report(s, depot, make_report([HOSTILE], day(2), site="Depot"))
        ids = {d.mac: d.id for d in s.scalars(select(Device))}
        out.hik, out.axis = ids["44:19:b6:00:00:11"], ids["00:40:8c:00:00:20"]
        out.hostile, out.annex_device = ids["00:12:12:66:66:66"], ids["44:19:b6:00:00:55"]
        for email, role in PEOPLE.items():
            user = add_user(s, email, role, PASSWORD, created_by="test")
            if email.startswith("annex"):
                s.add(UserSite(user_id=user.id, site_id=out.annex))
    return out


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def login(client: TestClient, email: str, password: str = PASSWORD, follow: bool = False) -> httpx.Response:
    page = client.get("/login")
    assert page.status_code == 200
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf": csrf_of(page.text)},
        follow_redirects=follow,
    )


@contextmanager
def https_client(db: Database) -> Iterator[TestClient]:
    """A browser on https (so the cookie is the Secure `__Host-` one) against the real app and its middleware."""
    with TestClient(  # type: ignore[arg-type]
        asgi(Service(db)), base_url="https://testserver", raise_server_exceptions=True, follow_redirects=False
    ) as c:
        yield c


def logged_in(client: TestClient, email: str) -> TestClient:
    """The client, logged in as `email` (the test fails when the login does not redirect)."""
    r = login(client, email)
    assert r.status_code == 303, r.text
    return client
