"""The JSON export is a contract: the committed schema must be what the model generates."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema

from scanner._data import data_dir
from scanner.model import SCHEMA_VERSION, Device, ScanMetadata, ScanReport, Summary

COMMITTED = data_dir("reports") / "schema" / "scan-report.schema.json"


def test_committed_schema_matches_the_model() -> None:
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert committed == ScanReport.model_json_schema(), (
        "scanner/model.py changed the report contract: if deliberate, bump SCHEMA_VERSION, run `make schema` "
        "and commit reports/schema/scan-report.schema.json"
    )


def test_a_report_validates_against_the_committed_schema() -> None:
    now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    report = ScanReport(
        scan=ScanMetadata(version="0.1.0", started_at=now, finished_at=now, scope=["10.77.0.0/24"]),
        devices=[Device(id="h1", ip="10.77.0.11", manufacturer="Hikvision", brand="HiLook", confidence=0.97)],
        summary=Summary(devices=1, cameras=1, flagged=0, by_manufacturer={"Hikvision": 1}, by_severity={}),
    )
    doc = json.loads(report.model_dump_json())
    assert doc["schema_version"] == SCHEMA_VERSION
    jsonschema.validate(doc, json.loads(COMMITTED.read_text(encoding="utf-8")))
    doc["devices"][0]["confidence"] = 2
    try:
        jsonschema.validate(doc, json.loads(COMMITTED.read_text(encoding="utf-8")))
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("a confidence of 2 must not validate")
