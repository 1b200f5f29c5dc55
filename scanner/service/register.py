"""The asset register: a site's CSV of what it owns, imported whole, and its reconciliation with the scans.

The CSV is UTF-8 (with or without a BOM), comma- or semicolon-separated, with a header row. A row names a
device by `mac` or `ip` (at least one) and may give `asset_tag`, `location`, `owner`, `approved` and `name`.
A NetBox device export is accepted as it comes: its column names (`Name`, `Status`, `Tenant`, `Site`,
`Location`, `Asset tag`, `IP Address`, `IPv4 Address`, `Primary IPv4`, ...) map onto ours, an address
with a prefix length (`10.0.0.5/24`) is read as the address, and a NetBox `Status` of `Active` means
approved when the file has no `approved` column.

Bad rows are reported by line number (the physical line of the file, as an editor shows it) and nothing
is imported: the import is all or nothing, and replaces the site's previous register in one transaction.
Cells are stored as the file gives them: a cell that a spreadsheet would read as a formula stays text,
and is neutralised whenever camscan writes it to a CSV again.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from scanner.service.lifecycle import recent_scan_starts
from scanner.service.store.models import Device, RegisterEntry, Site, utcnow

MAX_REGISTER_BYTES = 1024 * 1024  # the API's request limit; ~10,000 rows of a typical register
MAX_ROWS = 20000
MAX_ERRORS = 100
CELL_MAX = 200

#: Our column, and the header names (lower-cased, spaces and dashes as underscores) that mean it.
COLUMNS: dict[str, tuple[str, ...]] = {
    "mac": ("mac", "mac_address", "macaddress", "hardware_address"),
    "ip": ("ip", "ip_address", "ipaddress", "address", "ipv4_address", "primary_ipv4", "primary_ip4", "primary_ip",
           "ipv6_address", "primary_ipv6", "primary_ip6"),
    "asset_tag": ("asset_tag", "assettag", "asset", "asset_number", "tag"),
    "location": ("location", "room", "place"),
    "owner": ("owner", "tenant", "contact", "department"),
    "approved": ("approved",),
    "name": ("name", "device", "device_name", "hostname"),
    "site": ("site",),
    "status": ("status",),
}  # fmt: skip
TRUE = {"yes", "y", "true", "1", "approved", "x"}
FALSE = {"no", "n", "false", "0", "", "not approved"}
MAC = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$")
MAC_DOTTED = re.compile(r"^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$")


class RegisterError(ValueError):
    """The file as a whole cannot be read (encoding, header, size); the message says why."""


@dataclass
class ParsedRegister:
    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)  # our column -> the file's header


def decode(raw: bytes) -> str:
    """UTF-8 with or without a BOM; anything else is refused with what it looks like."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise RegisterError("the file is UTF-16: save it as CSV UTF-8 (comma or semicolon separated)")
    if len(raw) >= 2 and (raw[0] == 0 or raw[1] == 0):
        raise RegisterError("the file looks like UTF-16 or binary (NUL bytes): save it as CSV UTF-8")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RegisterError(
            f"the file is not UTF-8 (byte 0x{raw[exc.start]:02x} on line {line}; Latin-1 or Windows-1252?): "
            "save it as CSV UTF-8"
        ) from None
    if "\x00" in text:
        raise RegisterError("the file contains NUL characters: not a CSV text file")
    return text


def _key(header: str) -> str:
    return re.sub(r"[\s\-]+", "_", header.strip().lower())


def normalise_mac(value: str) -> str | None:
    v = value.strip().lower()
    if MAC_DOTTED.match(v):
        v = v.replace(".", "")
    if re.fullmatch(r"[0-9a-f]{12}", v):
        return ":".join(v[i : i + 2] for i in range(0, 12, 2))
    if MAC.match(v):
        hexes = re.sub(r"[:-]", "", v)
        return ":".join(hexes[i : i + 2] for i in range(0, 12, 2))
    return None


def normalise_ip(value: str) -> str | None:
    v = value.strip()
    if "/" in v:  # NetBox writes addresses with their prefix length
        v = v.split("/", 1)[0]
    try:
        return str(ipaddress.ip_address(v))
    except ValueError:
        return None


def parse_register(raw: bytes) -> ParsedRegister:
    """Read and check a register CSV; `errors` lists each bad row as {"line", "msg"}."""
    if len(raw) > MAX_REGISTER_BYTES:
        raise RegisterError(f"the file is {len(raw)} bytes, more than the {MAX_REGISTER_BYTES} accepted")
    text = decode(raw)
    if not text.strip():
        raise RegisterError("the file is empty")
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise RegisterError(f"line 1: the header cannot be read: {exc}") from None
    out = ParsedRegister()
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        key = _key(name)
        for ours, names in COLUMNS.items():
            if key in names and ours not in index:
                index[ours] = i
                out.columns[ours] = name.strip()[:80]
                break
    if "mac" not in index and "ip" not in index:
        raise RegisterError(
            "line 1: the header names neither a mac nor an ip column (found: "
            + ", ".join(repr(h.strip()[:40]) for h in header[:20])
            + ")"
        )
    seen: dict[tuple[str, str], int] = {}
    line = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            out.errors.append({"line": reader.line_num, "msg": f"the row cannot be read: {exc}"})
            break
        start, line = line + 1, reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(out.rows) + len(out.errors) >= MAX_ROWS:
            raise RegisterError(f"the file has more than {MAX_ROWS} rows")
        problems: list[str] = []
        if len(cells) > len(header):
            problems.append(f"{len(cells)} cells, the header has {len(header)}")

        def cell(ours: str, cells: list[str] = cells) -> str:
            i = index.get(ours)
            return cells[i].strip() if i is not None and i < len(cells) else ""

        row: dict[str, Any] = {"line": start}
        mac_text, ip_text = cell("mac"), cell("ip")
        row["mac"] = normalise_mac(mac_text) if mac_text else None
        row["ip"] = normalise_ip(ip_text) if ip_text else None
        if mac_text and row["mac"] is None:
            problems.append(f"mac: {mac_text[:40]!r} is not a MAC address")
        if ip_text and row["ip"] is None:
            problems.append(f"ip: {ip_text[:60]!r} is not an IP address")
        if not mac_text and not ip_text:
            problems.append("neither mac nor ip is given")
        for ours in ("asset_tag", "location", "owner", "name"):
            value = cell(ours)
            if ours == "location" and not value and cell("site"):
                value = cell("site")
            if len(value) > CELL_MAX:
                problems.append(f"{ours}: longer than {CELL_MAX} characters")
            row[ours] = value or None
        if "approved" in index:
            flag = cell("approved").lower()
            if flag in TRUE:
                row["approved"] = True
            elif flag in FALSE:
                row["approved"] = False
            else:
                problems.append(f"approved: {cell('approved')[:20]!r} is not yes/no, true/false or 1/0")
        else:
            row["approved"] = cell("status").lower() == "active"
        for ident in ("mac", "ip"):
            known = row.get(ident)
            if known:
                if (ident, known) in seen:
                    problems.append(f"{ident} {known} is also on line {seen[(ident, known)]}")
                else:
                    seen[(ident, known)] = start
        if problems:
            if len(out.errors) < MAX_ERRORS:
                out.errors.append({"line": start, "msg": "; ".join(problems)})
            continue
        out.rows.append(row)
    return out


def import_register(session: Session, site: Site, parsed: ParsedRegister, actor: str) -> int:
    """Replace the site's register with `parsed` (which has no errors), in the caller's transaction."""
    from scanner.service.auth import audit

    assert not parsed.errors
    session.execute(delete(RegisterEntry).where(RegisterEntry.site_id == site.id))
    now = utcnow()
    session.add_all(RegisterEntry(site_id=site.id, imported_at=now, imported_by=actor, **row) for row in parsed.rows)
    session.flush()
    audit(session, actor, "register.import", f"site:{site.slug}",
          {"rows": len(parsed.rows), "columns": parsed.columns})  # fmt: skip
    return len(parsed.rows)


def entry_json(e: RegisterEntry) -> dict[str, Any]:
    return {
        "line": e.line,
        "mac": e.mac,
        "ip": e.ip,
        "name": e.name,
        "asset_tag": e.asset_tag,
        "location": e.location,
        "owner": e.owner,
        "approved": e.approved,
    }


BRIEF_COLUMNS = (Device.id, Device.ip, Device.mac, Device.manufacturer, Device.brand, Device.model,
                 Device.device_type, Device.flagged, Device.status, Device.last_seen, Device.lifecycle)  # fmt: skip


def _device_brief(d: Any) -> dict[str, Any]:
    """A device (or a row of BRIEF_COLUMNS) as the reconciliation lists it."""
    return {
        "id": d.id,
        "ip": d.ip,
        "mac": d.mac,
        "manufacturer": d.manufacturer,
        "brand": d.brand,
        "model": d.model,
        "device_type": d.device_type,
        "flagged": d.flagged,
        "status": d.status,
        "last_seen": d.last_seen.isoformat(),
        "lifecycle": d.lifecycle,
    }


def reconcile(session: Session, site: Site) -> dict[str, Any]:
    """The register against the inventory: devices present that the register lacks, register entries not
    seen in the site's last N scans (N = removed_after_scans), flagged devices still present, and approved
    register entries whose device is flagged. A register entry matches a device by MAC, else by address."""
    entries = list(
        session.scalars(select(RegisterEntry).where(RegisterEntry.site_id == site.id).order_by(RegisterEntry.line))
    )
    devices: list[Any] = list(  # rows of the columns a reconciliation shows (not whole ORM objects: 4x faster)
        session.execute(select(*BRIEF_COLUMNS).where(Device.site_id == site.id).order_by(Device.id))
    )
    by_mac = {d.mac.lower(): d for d in devices if d.mac}
    by_ip: dict[str, Any] = {}
    for dev in devices:  # an address is trusted only for a device present now (it may have moved)
        if dev.ip and (dev.ip not in by_ip or dev.status == "present"):
            by_ip[dev.ip] = dev
    n, starts = recent_scan_starts(session, site)
    matched: set[int] = set()
    unseen: list[dict[str, Any]] = []
    approved_flagged: list[dict[str, Any]] = []
    for e in entries:
        d: Any = by_mac.get(e.mac) if e.mac else None
        if d is None and e.ip and not e.mac:
            d = by_ip.get(e.ip)
        if d is None and e.ip and e.mac and e.ip in by_ip and not by_ip[e.ip].mac:
            d = by_ip[e.ip]  # a device known only by address, registered with its MAC
        if d is not None:
            matched.add(d.id)
        never = d is None
        stale = d is not None and len(starts) >= n and d.last_seen < starts[-1]
        if starts and (never or stale):
            unseen.append({**entry_json(e), "device": None if d is None else _device_brief(d),
                           "last_seen": None if d is None else d.last_seen.isoformat()})  # fmt: skip
        if d is not None and e.approved and d.flagged:
            approved_flagged.append({**entry_json(e), "device": _device_brief(d)})
    unregistered = [_device_brief(d) for d in devices if d.status == "present" and d.id not in matched]
    flagged_present = [_device_brief(d) for d in devices if d.status == "present" and d.flagged]
    return {
        "site": site.slug,
        "register_entries": len(entries),
        "scans_considered": n,
        "unregistered": unregistered,
        "registered_unseen": unseen,
        "flagged_present": flagged_present,
        "approved_flagged": approved_flagged,
    }
