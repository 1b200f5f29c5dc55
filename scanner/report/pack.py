"""Audit packs: a zip of scan reports and CSV history with a manifest of SHA-256 digests, and its check.

An auditor downloads a pack (`GET /api/v1/export`) and checks it offline with `camscan verify PACK.zip`:
every file the manifest lists must be in the zip with the listed size and SHA-256, no other file may be
in it, and every report inside must pass its own integrity check (the digest camscan wrote into it). Any
difference is named by file. The manifest is not signed: it proves that nothing changed in transit or in
storage since the pack was made, and each report's own digest proves the report's content.

This module is pure (bytes and files, no database): the service builds packs with `write_pack`, the CLI
checks them with `verify_pack`.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from scanner.report.export import verify_document

FORMAT = "camscan-audit-pack"
VERSION = 1
MANIFEST = "manifest.json"
MAX_FILES = 100_000
MAX_MEMBER_BYTES = 512 * 1024 * 1024  # a report of a /16 stays far below; a zip bomb does not
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
CHUNK = 1024 * 1024


def is_pack(path: Path) -> bool:
    """Whether the file is a zip (the verify command's switch between a report and a pack)."""
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def write_pack(out: IO[bytes], files: Iterable[tuple[str, bytes]], meta: dict[str, Any]) -> dict[str, Any]:
    """Write a pack of `files` (path in the zip, bytes) and its manifest to `out`; returns the manifest."""
    listed: list[dict[str, Any]] = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name, data in files:
            if name == MANIFEST or name in {f["path"] for f in listed}:
                raise ValueError(f"{name!r} is in the pack twice")
            zf.writestr(_info(name), data)
            listed.append({"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        manifest = {"format": FORMAT, "version": VERSION, **meta, "files": listed}
        zf.writestr(_info(MANIFEST), json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8") + b"\n")
    return manifest


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # the bytes of a pack depend on its content only
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


@dataclass
class PackCheck:
    ok: bool = True
    problems: list[str] = field(default_factory=list)  # each names the file: "reports/x.json: ..."
    files: int = 0
    reports: int = 0
    manifest: dict[str, Any] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        self.ok = False
        self.problems.append(message)


def _digest(zf: zipfile.ZipFile, info: zipfile.ZipInfo, keep: bool) -> tuple[str, int, bytes | None]:
    h = hashlib.sha256()
    size = 0
    kept = bytearray() if keep else None
    with zf.open(info) as fh:
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_MEMBER_BYTES:
                raise ValueError(f"more than {MAX_MEMBER_BYTES} bytes uncompressed")
            h.update(chunk)
            if kept is not None:
                kept += chunk
    return h.hexdigest(), size, None if kept is None else bytes(kept)


def verify_pack(path: Path) -> PackCheck:
    """Check a pack: the manifest, every file's size and SHA-256, nothing unlisted, every report's digest."""
    check = PackCheck()
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        check.fail(f"{path.name}: not a readable zip: {exc}")
        return check
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_FILES:
            check.fail(f"{path.name}: {len(infos)} files, more than the {MAX_FILES} a pack may hold")
            return check
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            if info.filename in members:
                check.fail(f"{info.filename}: in the zip twice")
            members[info.filename] = info
        if MANIFEST not in members:
            check.fail(f"{MANIFEST}: missing: this is not a camscan audit pack")
            return check
        try:
            if members[MANIFEST].file_size > MAX_MANIFEST_BYTES:
                raise ValueError("too large")
            manifest = json.loads(zf.read(members[MANIFEST]).decode("utf-8"))
        except (ValueError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
            check.fail(f"{MANIFEST}: cannot be read: {exc}")
            return check
        if (
            not isinstance(manifest, dict)
            or manifest.get("format") != FORMAT
            or not isinstance(manifest.get("files"), list)
        ):
            check.fail(f"{MANIFEST}: not a camscan audit pack manifest")
            return check
        check.manifest = manifest
        listed: set[str] = set()
        for entry in manifest["files"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                check.fail(f"{MANIFEST}: an entry without a path")
                continue
            name = entry["path"]
            listed.add(name)
            member = members.get(name)
            if member is None:
                check.fail(f"{name}: listed in the manifest but missing from the zip")
                continue
            is_report = name.startswith("reports/") and name.endswith(".json")
            try:
                digest, size, data = _digest(zf, member, keep=is_report)
            except (ValueError, zipfile.BadZipFile, OSError) as exc:
                check.fail(f"{name}: cannot be read: {exc}")
                continue
            check.files += 1
            if digest != entry.get("sha256") or size != entry.get("size"):
                check.fail(f"{name}: changed (its SHA-256 or size differs from the manifest)")
            if is_report and data is not None:
                check.reports += 1
                try:
                    doc = json.loads(data.decode("utf-8"))
                    ok, message = verify_document(doc) if isinstance(doc, dict) else (False, "not a JSON object")
                except (ValueError, UnicodeDecodeError) as exc:
                    ok, message = False, f"not a JSON report: {exc}"
                if not ok:
                    check.fail(f"{name}: the report's integrity check fails: {message}")
        for name in members:
            if name != MANIFEST and name not in listed:
                check.fail(f"{name}: in the zip but not in the manifest (added after the pack was made)")
    return check
