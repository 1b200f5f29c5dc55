"""CSV export: one row per device, columns from reports/csv-columns.txt, safe to open in a spreadsheet.

Device strings are hostile: a cell that a spreadsheet would read as a formula (starting with =, +, -, @,
tab or CR) is prefixed with a single quote (OWASP's CSV-injection advice), and every cell is capped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path

from scanner._data import data_dir
from scanner.model import Device, ScanReport

CELL_CAP = 1024
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


def columns() -> list[str]:
    lines = (data_dir("reports") / "csv-columns.txt").read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def neutralise(value: object) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\x00", "")
    if len(text) > CELL_CAP:
        text = text[:CELL_CAP] + "…"
    if text.startswith(_FORMULA):
        text = "'" + text
    return text


def row(d: Device) -> dict[str, object]:
    worst = min(d.findings, key=lambda f: _ORDER[f.severity.value], default=None)
    return {
        "id": d.id,
        "ip": d.ip,
        "mac": d.mac,
        "manufacturer": d.manufacturer,
        "brand": d.brand,
        "model": d.model,
        "firmware": d.firmware,
        "device_type": d.device_type.value if d.device_type else None,
        "confidence": f"{d.confidence:.3f}",
        "flagged": "yes" if d.flagged else "no",
        "max_severity": worst.severity.value if worst else "",
        "findings": "; ".join(
            f"{f.policy}/{f.rule} ({f.severity.value}{', ' + f.status if f.status else ''})" for f in d.findings
        ),
        "finding_status": " ".join(sorted({f.status for f in d.findings if f.status})),
        "notes": " | ".join(d.notes),
        "matched_rules": " ".join(d.matched),
        "hostnames": " ".join(d.hostnames),
    }


def render_csv(report: ScanReport, exceptions: Mapping[str, str] | None = None) -> str:
    """The CSV; with `exceptions` (report device id -> text, from the service) a last column `exception`."""
    cols = columns() + (["exception"] if exceptions is not None else [])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(cols)
    for d in report.devices:
        r = row(d)
        if exceptions is not None:
            r["exception"] = exceptions.get(d.id, "")
        writer.writerow([neutralise(r.get(c)) for c in cols])
    return buf.getvalue()


def write_csv(report: ScanReport, path: Path) -> None:
    path.write_text(render_csv(report), encoding="utf-8", newline="")
