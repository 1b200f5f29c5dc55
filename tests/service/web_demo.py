"""A dashboard worth looking at: the demo lab's personas at a few council sites, scanned weekly while the
flagged ones are replaced, as real reports through the real ingest path. Used by the browser test (and its
screenshot) and by benchmarks/bench_pages.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from scanner.knowledge import Knowledge
from scanner.lab.evidence import persona_evidence
from scanner.lab.persona import Persona, load_personas
from scanner.model import Evidence, Host
from scanner.report.build import Audit, Run, build_report
from scanner.report.export import report_document
from scanner.service.ingest import ingest_report
from scanner.service.store.db import Database
from scanner.service.store.models import Device, Site

#: (slug, name, network's second octet, flagged devices replaced per week)
SITES = [
    ("town-hall", "Town Hall", 77, 0.75),
    ("central-library", "Central Library", 78, 0.35),
    ("leisure-centre", "Leisure Centre", 79, 0.0),
]
FLAGGED_PERSONAS = ("hik-bullet", "hik-nvr", "dahua-dome", "amcrest-relabel", "lts-relabel", "ezviz-c6n")
#: a device whose names try to run script and to fetch a canary URL (the browser test asserts neither happens)
CANARY_SCRIPT = "<script>document.title='pwned';fetch('/canary/script')</script><img src=/canary/img>"


@dataclass
class Demo:
    sites: dict[str, int] = field(default_factory=dict)
    scans: dict[str, list[str]] = field(default_factory=dict)


def _host(p: Persona, octet: int, index: int, extra: list[Evidence] | None = None) -> Host:
    ip = f"10.{octet}.0.{p.ip.rsplit('.', 1)[1]}"
    mac = p.mac[:-5] + f"{octet:02x}:{index:02x}"
    evidence = [*persona_evidence(p, with_mac=False), Evidence(key="mac", value=mac, source="arp"), *(extra or [])]
    return Host(id=ip, ip=ip, mac=mac, evidence=evidence)


def _canary(octet: int) -> Host:
    ip = f"10.{octet}.0.99"
    ev = [
        Evidence(key="onvif.model", value=CANARY_SCRIPT, source="onvif"),
        Evidence(key="http.title", value=CANARY_SCRIPT, source="http"),
        Evidence(key="onvif.firmware", value="\"'><svg onload=fetch('/canary/svg')>", source="onvif"),
        Evidence(key="mac", value=f"00:12:12:99:{octet:02x}:99", source="arp"),
    ]
    return Host(id=ip, ip=ip, mac=f"00:12:12:99:{octet:02x}:99", evidence=ev)


def seed_demo(db: Database, weeks: int = 8, now: datetime | None = None) -> Demo:
    """`weeks` weekly scans of each site, the newest a day ago; each week some flagged devices are replaced."""
    from tests.service.conftest import engine_and_packs

    engine, packs = engine_and_packs()
    knowledge = Knowledge(engine, packs)
    personas = [p for p in load_personas() if p.id != "hostile"]
    flagged = [p for p in personas if p.id in FLAGGED_PERSONAS]
    others = [p for p in personas if p.id not in FLAGGED_PERSONAS]
    now = now or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    demo = Demo()
    with db.session() as s:
        for slug, name, octet, rate in SITES:
            site = Site(slug=slug, name=name, targets=[f"10.{octet}.0.0/24"], schedule="0 2 * * 1", timezone="UTC")
            s.add(site)
            s.flush()
            demo.sites[slug] = site.id
            demo.scans[slug] = []
            for week in range(weeks):
                when = now - timedelta(days=1 + 7 * (weeks - 1 - week))
                still = flagged[: max(0, len(flagged) - int(week * rate))]
                hosts = [_host(p, octet, i) for i, p in enumerate(others + still)]
                if slug == "town-hall":
                    hosts.append(_canary(octet))
                report = build_report(
                    hosts, knowledge, Audit(site=name, operator="camscan serve"), Run(methods=["arp"], started_at=when)
                )
                raw = (json.dumps(report_document(report), indent=2, ensure_ascii=False) + "\n").encode()
                demo.scans[slug].append(ingest_report(s, site, raw, trigger="schedule").scan_id)
        # the leisure centre planned one replacement and let it slip; the library planned one in time
        plans = [
            ("leisure-centre", now.date() - timedelta(days=10), "Leisure services"),
            ("central-library", datetime.now(UTC).date() + timedelta(days=60), "Library facilities"),
        ]
        for slug, due, owner in plans:
            device = s.scalars(
                select(Device)
                .where(Device.site_id == demo.sites[slug], Device.flagged.is_(True), Device.status == "present")
                .order_by(Device.id)
            ).first()
            assert device is not None
            device.lifecycle, device.replacement_due, device.replacement_owner = "replacement_planned", due, owner
            device.lifecycle_updated_at, device.lifecycle_updated_by = now, "user:facilities@council.example"
    return demo
