"""The JSON export: the auditor's copy of a ScanReport, with an integrity digest anyone can recompute.

integrity = {"algorithm": "sha256", "digest": hex(sha256(canonical(report without "integrity")))}, where
canonical(x) = json.dumps(x, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8").
Any change to the body, one byte included, changes the digest. (A digest shows tampering after export;
it is not a signature: whoever can edit the file can recompute it. Keep a copy of the digest elsewhere,
or sign the file, for that.)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from scanner.errors import CamscanError
from scanner.model import Integrity, ScanReport


class ReportError(CamscanError, ValueError):
    pass


def canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def digest_of(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in body.items() if k != "integrity"})).hexdigest()


def report_document(report: ScanReport) -> dict[str, Any]:
    """The report as a JSON-ready dict, with its integrity digest filled in."""
    body = report.model_dump(mode="json", exclude={"integrity"})
    body["integrity"] = Integrity(digest=digest_of(body)).model_dump(mode="json")
    return body


def write_json(report: ScanReport, path: Path) -> str:
    doc = report_document(report)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return str(doc["integrity"]["digest"])


def load_document(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ReportError(f"{path} is not a camscan report (not a JSON object)")
    return doc


def verify_document(doc: dict[str, Any]) -> tuple[bool, str]:
    """(ok, message): whether the integrity digest matches the body."""
    integ = doc.get("integrity")
    if not isinstance(integ, dict) or integ.get("algorithm") != "sha256" or not isinstance(integ.get("digest"), str):
        return False, "no sha256 integrity digest in the report"
    actual = digest_of(doc)
    if actual != integ["digest"]:
        return False, f"digest mismatch: the report says {integ['digest']}, its content hashes to {actual}"
    return True, f"sha256 {actual}"


def load_report(path: Path) -> ScanReport:
    doc = load_document(path)
    try:
        return ScanReport.model_validate(doc)
    except ValidationError as exc:
        raise ReportError(
            f"{path} is not a valid camscan report: {exc.error_count()} problem(s), first: "
            f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
        ) from None
