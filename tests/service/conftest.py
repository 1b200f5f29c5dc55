"""Fixtures of the service tests: a migrated database on SQLite, and on PostgreSQL too when
CAMSCAN_TEST_DATABASE_URL names a server (.ci/run sets it); the API app; real camscan reports.

PostgreSQL: each test session creates its own throwaway database on that server (a random name, so that
parallel runs never meet), migrates it once, empties its tables before each test, and drops it at the end.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from scanner.knowledge import Knowledge
from scanner.model import Evidence, Host
from scanner.report.build import Audit, Run, build_report
from scanner.report.export import report_document
from scanner.service.api import Service, create_app
from scanner.service.auth import create_token
from scanner.service.store.db import Database, migrate, normalise_url
from scanner.service.store.models import Base, Site

with warnings.catch_warnings():  # starlette warns that it would prefer another httpx package; irrelevant here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

PG_ENV = "CAMSCAN_TEST_DATABASE_URL"
BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"{PG_ENV} not set")),
]


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this test session only, migrated; dropped at the end."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} not set")
    admin = create_engine(normalise_url(base), isolation_level="AUTOCOMMIT")
    name = f"camscan_t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url)
        yield url
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'camscan.db'}"
        migrate(url)
        return url
    url = str(request.getfixturevalue("pg_database"))
    engine = create_engine(url)
    with engine.begin() as c:  # a clean slate for each test (TRUNCATE fires no row triggers)
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        c.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database.open(db_url)
    try:
        yield database
    finally:
        database.close()


def add_site(db: Database, slug: str = "town-hall", targets: tuple[str, ...] = ("10.77.0.0/24",)) -> int:
    with db.session() as s:
        site = Site(slug=slug, name=slug.replace("-", " ").title(), targets=list(targets))
        s.add(site)
        s.flush()
        return site.id


# ---- real reports ---------------------------------------------------------------------------------

HIK = [("http.server", "App-webs/"), ("sadp.device_type", "DS-2CD2143G0-I")]
AXIS = [("onvif.manufacturer", "AXIS"), ("onvif.model", "M1065-L")]


@dataclass
class Dev:
    ip: str
    mac: str | None = None
    evidence: tuple[tuple[str, str], ...] = ()
    serial: str | None = None

    def host(self) -> Host:
        ev = [Evidence(key=k, value=v, source="test") for k, v in self.evidence]
        if self.mac:
            ev.append(Evidence(key="mac", value=self.mac, source="test"))
        if self.serial:
            ev.append(Evidence(key="onvif.serial", value=self.serial, source="test"))
        return Host(id=self.ip, ip=self.ip, mac=self.mac, evidence=ev)


_ENGINE: Any = None


def engine_and_packs() -> tuple[Any, Any]:
    global _ENGINE
    if _ENGINE is None:
        from scanner.fingerprint.engine import Engine
        from scanner.fingerprint.rules import load_ruleset
        from scanner.policy.packs import load_packs

        engine = Engine(load_ruleset())
        _ENGINE = (engine, load_packs(engine.ruleset.makers))
    return _ENGINE  # type: ignore[no-any-return]


def make_report(devices: list[Dev], when: datetime | None = None, site: str = "Town Hall") -> bytes:
    """A real camscan report (the engine and packs decide identities and findings), as `scan --json` writes it."""
    engine, packs = engine_and_packs()
    run = Run(methods=["arp"], started_at=when) if when else Run(methods=["arp"])
    report = build_report([d.host() for d in devices], Knowledge(engine, packs), Audit(site=site), run)
    doc = report_document(report)
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def day(n: int) -> datetime:
    return datetime(2026, 3, 1, 2, 0, tzinfo=UTC) + timedelta(days=n)


# ---- the API ----------------------------------------------------------------------------------------


@dataclass
class Api:
    client: TestClient
    db: Database
    tokens: dict[str, str]

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
def api(db: Database) -> Iterator[Api]:
    """The app (size limit and request log included) over `db`, with tokens of every role, one of them
    limited to the site `annex`."""
    from scanner.service.api.app import asgi

    site_a = add_site(db, "town-hall")
    site_b = add_site(db, "annex", ("10.78.0.0/24",))
    tokens: dict[str, str] = {}
    with db.session() as s:
        for role in ("admin", "operator", "auditor"):
            tokens[role] = create_token(s, role, role)[1]
        annex = s.get(Site, site_b)
        tokens["annex-operator"] = create_token(s, "annex op", "operator", annex)[1]
    assert site_a != site_b
    with TestClient(asgi(Service(db)), raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        yield Api(client, db, tokens)


__all__ = ["BACKENDS", "Api", "Dev", "TestClient", "add_site", "create_app", "day", "make_report"]


# ---- the page tests' service: `seeded` (tests/service/web_helpers.seed: sites, reports, people of every role)
# and `client`, a browser on https against it. test_api.py and test_pack.py seed through the API instead and
# define a `seeded` fixture of their own, which takes precedence in those modules.


@pytest.fixture
def seeded(db: Database) -> Any:
    from tests.service.web_helpers import seed

    return seed(db)


@pytest.fixture
def client(seeded: Any) -> Iterator[TestClient]:
    from tests.service.web_helpers import https_client

    with https_client(seeded.db) as c:
        yield c
