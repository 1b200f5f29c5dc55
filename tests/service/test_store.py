"""The store and the ingest path, on SQLite and (with CAMSCAN_TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from scanner.report.export import verify_document
from scanner.service.ingest import IngestError, ingest_report, rebuild_all, report_bytes
from scanner.service.store.db import Database
from scanner.service.store.models import AuditEntry, Base, Device, Finding, Observation, Scan, Site
from tests.service.conftest import AXIS, HIK, Dev, add_site, day, make_report

HIK1 = Dev("10.77.0.11", "44:19:b6:00:00:11", tuple(HIK))
AXIS1 = Dev("10.77.0.31", "00:40:8c:00:00:31", tuple(AXIS))
PRINTER = Dev("10.77.0.90", None, (("http.title", "HP LaserJet"),))


def ingest(db: Database, site_id: int, raw: bytes) -> Any:
    with db.session() as s:
        site = s.get(Site, site_id)
        assert site is not None
        return ingest_report(s, site, raw)


def count(db: Database, model: type[Base]) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def devices(db: Database) -> dict[str, Device]:
    with db.session() as s:
        return {f"{d.identity_kind}:{d.identity_key}": d for d in s.scalars(select(Device))}


def test_the_migration_builds_exactly_the_models(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    assert diff == []


def test_a_report_is_stored_verbatim_and_the_inventory_derived(db: Database) -> None:
    site = add_site(db)
    raw = make_report([HIK1, AXIS1, PRINTER], day(0))
    result = ingest(db, site, raw)
    assert len(result.new) == 3 and not result.duplicate
    with db.session() as s:
        scan = s.get(Scan, result.scan_id)
        assert scan is not None and scan.status == "succeeded"
        stored = report_bytes(scan)
        assert stored == raw  # byte for byte
        assert verify_document(json.loads(stored))[0]
        assert scan.summary is not None and scan.summary["devices"] == 3
    found = devices(db)
    assert set(found) == {"mac:44:19:b6:00:00:11", "mac:00:40:8c:00:00:31", "ip:10.77.0.90"}
    hik = found["mac:44:19:b6:00:00:11"]
    assert hik.manufacturer == "Hikvision" and hik.flagged and hik.status == "present"
    assert not found["mac:00:40:8c:00:00:31"].flagged
    assert count(db, Observation) == 3
    with db.session() as s:
        packs = {f.pack for f in s.scalars(select(Finding).where(Finding.device_id == hik.id))}
    assert "us-ndaa-889" in packs


def test_the_same_report_twice_is_a_no_op(db: Database) -> None:
    site = add_site(db)
    raw = make_report([HIK1, AXIS1], day(0))
    first = ingest(db, site, raw)
    before = (count(db, Scan), count(db, Device), count(db, Observation), count(db, Finding))
    again = ingest(db, site, raw)
    assert again.duplicate and again.scan_id == first.scan_id
    assert (count(db, Scan), count(db, Device), count(db, Observation), count(db, Finding)) == before


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda raw: raw[:-40], id="truncated"),
        pytest.param(lambda raw: raw.replace(b"Hikvision", b"Hikvisiom", 1), id="digest-mismatch"),
        pytest.param(lambda raw: b"\xff\xfe" + raw, id="not-utf8"),
        pytest.param(lambda raw: b"[1, 2, 3]", id="not-an-object"),
        pytest.param(
            lambda raw: _redigest(raw, lambda d: d.update({"unknown_field": 1})),
            id="unknown-field-with-valid-digest",
        ),
    ],
)
def test_a_bad_report_is_refused_and_stores_nothing(db: Database, mangle: Any) -> None:
    site = add_site(db)
    with pytest.raises(IngestError):
        ingest(db, site, mangle(make_report([HIK1], day(0))))
    assert (count(db, Scan), count(db, Device), count(db, Observation)) == (0, 0, 0)


def _redigest(raw: bytes, change: Any) -> bytes:
    from scanner.report.export import digest_of

    doc = json.loads(raw)
    change(doc)
    doc["integrity"]["digest"] = digest_of(doc)
    return json.dumps(doc).encode()


def test_identity_is_mac_then_serial_then_ip(db: Database) -> None:
    site = add_site(db)
    moved = Dev("10.77.0.12", "44:19:b6:00:00:11", tuple(HIK))  # same MAC, new address
    no_mac = Dev("10.77.0.40", None, tuple(AXIS), serial="ACCC8E0001")
    no_mac_moved = Dev("10.77.0.41", None, tuple(AXIS), serial="ACCC8E0001")
    ingest(db, site, make_report([HIK1, no_mac, PRINTER], day(0)))
    ingest(db, site, make_report([moved, no_mac_moved, PRINTER], day(1)))
    found = devices(db)
    assert set(found) == {"mac:44:19:b6:00:00:11", "serial:ACCC8E0001", "ip:10.77.0.90"}
    assert found["mac:44:19:b6:00:00:11"].ip == "10.77.0.12"
    assert found["serial:ACCC8E0001"].ip == "10.77.0.41"
    assert count(db, Observation) == 6


def test_an_address_given_to_another_device_is_another_device(db: Database) -> None:
    site = add_site(db)
    first = Dev("10.77.0.90", "44:19:b6:00:00:90", tuple(HIK))
    ingest(db, site, make_report([first], day(0)))
    successor = Dev("10.77.0.90", "00:40:8c:00:00:90", tuple(AXIS))  # DHCP gave the address to a new camera
    ingest(db, site, make_report([successor], day(1)))
    found = devices(db)
    assert found["mac:44:19:b6:00:00:90"].status == "gone"
    assert found["mac:00:40:8c:00:00:90"].status == "present"


def test_a_device_first_seen_without_its_mac_keeps_its_record(db: Database) -> None:
    site = add_site(db)
    ingest(db, site, make_report([PRINTER], day(0)))  # known by address only (no MAC seen)
    ingest(db, site, make_report([Dev("10.77.0.90", "00:11:0a:00:00:90", (("http.title", "HP LaserJet"),))], day(1)))
    found = devices(db)
    assert len(found) == 1 and found["ip:10.77.0.90"].mac == "00:11:0a:00:00:90"


def test_present_gone_and_back_with_first_and_last_seen(db: Database) -> None:
    site = add_site(db)
    ingest(db, site, make_report([HIK1, AXIS1], day(0)))
    result = ingest(db, site, make_report([HIK1], day(1)))
    found = devices(db)
    axis = found["mac:00:40:8c:00:00:31"]
    assert axis.status == "gone" and result.gone == [axis.id]
    assert axis.last_seen == day(0)
    ingest(db, site, make_report([HIK1, AXIS1], day(2)))
    found = devices(db)
    axis = found["mac:00:40:8c:00:00:31"]
    assert axis.status == "present" and axis.first_seen == day(0) and axis.last_seen == day(2)


def test_findings_open_and_resolve(db: Database) -> None:
    site = add_site(db)
    ingest(db, site, make_report([HIK1], day(0)))
    relabelled = Dev("10.77.0.11", "44:19:b6:00:00:11", tuple(AXIS))  # the engine no longer names Hikvision
    ingest(db, site, make_report([relabelled], day(1)))
    with db.session() as s:
        rows = s.scalars(select(Finding).where(Finding.pack == "us-ndaa-889")).all()
    assert rows and all(f.first_seen == day(0) for f in rows)
    assert all(f.resolved_at == day(1) and f.last_seen == day(0) for f in rows)  # last seen: the scan before
    ingest(db, site, make_report([HIK1], day(2)))  # back again: a new open finding, the old one stays resolved
    with db.session() as s:
        rows = s.scalars(select(Finding).where(Finding.pack == "us-ndaa-889").order_by(Finding.id)).all()
    assert [f.resolved_at for f in rows][-1] is None and rows[0].resolved_at == day(1)


def _snapshot(db: Database) -> list[tuple[Any, ...]]:
    with db.session() as s:
        devs = s.execute(
            select(Device.identity_kind, Device.identity_key, Device.ip, Device.status, Device.first_seen,
                   Device.last_seen, Device.flagged, Device.manufacturer).order_by(Device.identity_key)
        ).all()  # fmt: skip
        obs = s.execute(
            select(Observation.seen_at, Observation.ip, Observation.flagged).order_by(
                Observation.seen_at, Observation.ip
            )
        ).all()
        finds = s.execute(
            select(Finding.pack, Finding.rule, Finding.first_seen, Finding.resolved_at).order_by(
                Finding.pack, Finding.rule, Finding.first_seen
            )
        ).all()
    return [tuple(r) for r in [*devs, *obs, *finds]]


SEQUENCE = [
    [HIK1, AXIS1, PRINTER],
    [HIK1, PRINTER],
    [Dev("10.77.0.11", "44:19:b6:00:00:11", tuple(AXIS)), AXIS1],
    [HIK1, AXIS1, PRINTER],
]


def test_out_of_order_ingest_gives_the_in_order_result(db: Database, tmp_path: Any) -> None:
    reports = [make_report(devs, day(i)) for i, devs in enumerate(SEQUENCE)]
    site = add_site(db)
    for raw in reports:
        ingest(db, site, raw)
    in_order = _snapshot(db)
    other = add_site(db, "elsewhere")
    with db.session() as s:  # the same reports for a second site, in a shuffled order
        s.execute(text("DELETE FROM observations"))
        s.execute(text("DELETE FROM findings"))
        s.execute(text("DELETE FROM devices"))
        s.execute(text("DELETE FROM scans"))
    for i in (2, 0, 3, 1):
        ingest(db, other, reports[i])
    assert _snapshot(db) == in_order


def test_rebuild_recomputes_the_inventory_and_keeps_ids_and_lifecycle(db: Database) -> None:
    site = add_site(db)
    for i, devs in enumerate(SEQUENCE):
        ingest(db, site, make_report(devs, day(i)))
    before = _snapshot(db)
    with db.session() as s:
        hik = s.scalars(select(Device).where(Device.identity_key == "44:19:b6:00:00:11")).one()
        hik.lifecycle, hik.replacement_owner = "replacement_planned", "Facilities"
        ids = {d.identity_key: d.id for d in s.scalars(select(Device))}
        s.execute(text("DELETE FROM observations"))  # damage the derived tables
        s.execute(text("UPDATE devices SET status = 'gone', manufacturer = 'x'"))
    with db.session() as s:
        assert rebuild_all(s) == {"town-hall": 4}
    assert _snapshot(db) == before
    with db.session() as s:
        assert {d.identity_key: d.id for d in s.scalars(select(Device))} == ids
        hik = s.scalars(select(Device).where(Device.identity_key == "44:19:b6:00:00:11")).one()
        assert (hik.lifecycle, hik.replacement_owner) == ("replacement_planned", "Facilities")
    new_site = add_site(db, "later")  # ids keep coming after a rebuild (PostgreSQL's sequence was moved on)
    ingest(db, new_site, make_report([Dev("10.9.0.1", "00:40:8c:99:99:99", tuple(AXIS))], day(9)))


def test_a_failed_ingest_leaves_nothing_half_written(db: Database) -> None:
    site = add_site(db)
    ingest(db, site, make_report([HIK1], day(0)))
    before = _snapshot(db), count(db, Scan)
    with pytest.raises(RuntimeError), db.session() as s:
        ingest_report(s, s.get(Site, site), make_report([HIK1, AXIS1], day(1)))  # type: ignore[arg-type]
        raise RuntimeError("the process dies here, before the commit")
    assert (_snapshot(db), count(db, Scan)) == before


def test_the_audit_log_is_append_only(db: Database) -> None:
    from scanner.service.auth import audit

    with db.session() as s:
        audit(s, "tester", "site.create", "site:x", {"a": 1})
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises((DBAPIError, IntegrityError)), db.session() as s:
            s.execute(text(statement))
    with db.session() as s:
        assert s.scalars(select(AuditEntry.actor)).all() == ["tester"]


def test_one_active_scan_per_site_is_enforced_by_the_database(db: Database) -> None:
    site = add_site(db)
    with db.session() as s:
        s.add(Scan(id="a", site_id=site, trigger="manual", status="queued", queued_at=day(0)))
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(Scan(id="b", site_id=site, trigger="schedule", status="queued", queued_at=day(0)))
    with db.session() as s:
        s.add(Scan(id="c", site_id=site, trigger="manual", status="failed", queued_at=day(0)))
    assert count(db, Scan) == 2


def test_new_devices_get_ids_in_the_order_of_the_report(db: Database) -> None:
    site = add_site(db)
    ingest(db, site, make_report([HIK1], day(0)))
    cams = [Dev(f"10.77.1.{i}", f"00:40:8c:00:01:{i:02x}", tuple(AXIS)) for i in range(60, 20, -1)]
    raw = make_report([*cams, HIK1, PRINTER, Dev("10.77.0.40", None, tuple(AXIS), serial="ACCC8E0001")], day(1))
    result = ingest(db, site, raw)
    from scanner.service.ingest import identities

    found = devices(db)
    keys = [next(":".join(i) for i in identities(d) if ":".join(i) in found) for d in json.loads(raw)["devices"]]
    order = [found[k] for k in keys]
    new = [d.id for d in order if d.identity_key != "44:19:b6:00:00:11"]
    assert len(new) == 42 and new == sorted(new) and sorted(result.new) == sorted(new)
    assert all(d.first_seen == day(1) and d.status == "present" for d in order if d.id in new)
    with db.session() as s:  # each observation belongs to the device it shows
        rows = s.execute(select(Observation.device_id, Observation.ip).where(Observation.scan_id == result.scan_id))
        seen = {device_id: ip for device_id, ip in rows}
    assert seen == {d.id: d.ip for d in order}


def test_an_ingest_leaves_the_garbage_collector_as_it_found_it(db: Database, monkeypatch: Any) -> None:
    import gc

    import scanner.service.ingest as ingest_module

    site = add_site(db)
    during: list[bool] = []
    apply = ingest_module.apply_report
    monkeypatch.setattr(ingest_module, "apply_report", lambda *a: during.append(gc.isenabled()) or apply(*a))
    assert gc.isenabled()
    ingest(db, site, make_report([HIK1], day(0)))
    assert during == [False] and gc.isenabled()  # held off while the report was applied, on again after
    with pytest.raises(IngestError):
        ingest(db, site, b"{}")
    assert gc.isenabled()
    gc.disable()  # a process that turned it off keeps it off
    try:
        ingest(db, site, make_report([HIK1, AXIS1], day(1)))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_ingests_turn_the_collector_on_when_the_last_one_leaves() -> None:
    import gc
    import threading

    from scanner.service.ingest import gc_paused

    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with gc_paused():
            entered.set()
            leave.wait(10)

    worker = threading.Thread(target=other)
    with gc_paused():
        worker.start()
        assert entered.wait(10) and not gc.isenabled()
    assert not gc.isenabled()  # the other ingest is still running
    leave.set()
    worker.join(10)
    assert gc.isenabled()


def _full_snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every derived row with every column but the observation and finding ids (a rebuild renumbers those)."""
    with db.session() as s:
        dev_cols = [c for c in Device.__table__.columns]
        devs = [tuple(r) for r in s.execute(select(*dev_cols).order_by(Device.id))]
        key = {r.id: (r.identity_kind, r.identity_key) for r in s.execute(select(Device.id, Device.identity_kind,
                                                                                 Device.identity_key))}  # fmt: skip
        obs_cols = [c for c in Observation.__table__.columns if c.name != "id"]
        obs = sorted((key[r.device_id], *r) for r in s.execute(select(*obs_cols)))
        find_cols = [c for c in Finding.__table__.columns if c.name != "id"]
        finds = sorted((key[r.device_id], *(str(v) for v in r)) for r in s.execute(select(*find_cols)))
    return {"devices": devs, "observations": obs, "findings": finds}


def test_a_changing_network_ingested_report_by_report_equals_its_rebuild(db: Database) -> None:
    """New devices (the multi-row insert), devices seen again, gone, back, moved and relabelled: ingesting
    report by report gives row for row what rebuilding from the stored reports gives (device ids kept)."""
    import random

    rng = random.Random(7)
    pool = [
        Dev(f"10.77.2.{i}", f"44:19:b6:00:02:{i:02x}" if i % 4 else None, tuple(HIK if i % 3 else AXIS),
            serial=f"SN-{i:04d}" if i % 5 == 0 else None)
        for i in range(1, 25)
    ]  # fmt: skip
    present = set(range(12))
    reports = []
    for n in range(8):
        present ^= {rng.randrange(24) for _ in range(3 if n < 3 else 6)}  # some leave, some come (new ones too)
        devs = [pool[i] for i in sorted(present)]
        if n % 3 == 2 and devs:  # one device relabelled (its findings resolve), one moved to another address
            d = devs[0]
            devs[0] = Dev(d.ip, d.mac, tuple(AXIS if d.evidence == tuple(HIK) else HIK), d.serial)
            d = devs[-1]
            devs[-1] = Dev(d.ip.replace("10.77.2.", "10.77.3."), d.mac, d.evidence, d.serial)
        reports.append(make_report(devs, day(n)))
    site = add_site(db)
    new_total = 0
    for raw in reports:
        new_total += len(ingest(db, site, raw).new)
    assert new_total > 12  # devices appeared after the first report too
    in_order = _full_snapshot(db)
    with db.session() as s:
        assert rebuild_all(s) == {"town-hall": 8}
    assert _full_snapshot(db) == in_order
