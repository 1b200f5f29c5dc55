"""CISA's Known Exploited Vulnerabilities (KEV) catalogue, as the data of a policy pack.

A pack whose header has a `kev:` section (camera-risk) keeps the KEV entries it cares about in a data file
of its own (`policies/kev/<file>`), and its rules name CVEs (`cves: [CVE-...]`): whether a CVE is in KEV,
since when, and what CISA requires come from that file, so a newer catalogue changes data, not rules.

Where the data comes from, in order:
  1. an installed file in camscan's data directory (`camscan data update --kev FILE`): rebuilt from CISA's
     JSON feed (known_exploited_vulnerabilities.json) as the user downloaded it, validated strictly,
     installed atomically with a manifest of the feed's digest and the install date (kev/manifest.json);
  2. the file shipped beside the pack (policies/kev/), made the same way from cisagov/kev-data.
The data file records the catalogue's catalogVersion and dateReleased; both go into every report
(`scan.packs`, `scan.knowledge`) and the HTML.

The feed is hostile input: it is size-capped, parsed with duplicate keys refused, and every field the pack
uses is type-checked; the count the catalogue states must equal its entries. Any fault refuses the whole
file with a message naming what is wrong, and nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from scanner._data import load_yaml
from scanner.errors import InputError
from scanner.model import KnowledgeRef

INSTALL_DIR = "kev"
MANIFEST = "manifest.json"
DATA_FORMAT = 1
MAX_FEED = 32 << 20  # the whole catalogue is about 1.3 MB (2025); room to grow, not to exhaust memory
MAX_DATA = 4 << 20  # a pack's own selection of entries
MAX_ENTRIES = 100_000
MAX_TEXT = 4096  # any one text field
_CATALOG_VERSION = re.compile(r"^\d{4}\.\d{2}\.\d{2}$")
_CVE = re.compile(r"^CVE-\d{4}-\d{4,7}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RELEASED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?$")
_FILE = re.compile(r"^[a-z0-9][a-z0-9.-]*\.yaml$")

# feed field -> required; every other field of an entry is ignored (CISA may add some)
_ENTRY_TEXT = {
    "cveID": True,
    "vendorProject": True,
    "product": True,
    "vulnerabilityName": True,
    "dateAdded": True,
    "shortDescription": False,
    "requiredAction": False,
    "dueDate": False,
    "knownRansomwareCampaignUse": False,
    "notes": False,
}


@dataclass(frozen=True, slots=True)
class KevEntry:
    """One KEV entry the pack keeps, with the camscan maker it belongs to (None: no canonical maker)."""

    cve: str
    vendor: str
    product: str
    name: str
    date_added: str
    due_date: str | None
    ransomware: str | None
    required_action: str | None
    description: str | None
    notes: str | None
    maker: str | None

    def summary(self) -> str:
        """One line for a finding's note: what, when, what CISA requires."""
        parts = [f"{self.cve}: {self.name} (in KEV since {self.date_added}"]
        if self.due_date:
            parts.append(f", federal due date {self.due_date}")
        if self.ransomware:
            parts.append(f", known ransomware use: {self.ransomware}")
        text = "".join(parts) + ")"
        if self.required_action:
            text += f"; required action: {self.required_action.strip().rstrip('.')}"
        return text


@dataclass(frozen=True, slots=True)
class KevData:
    """A pack's KEV data as loaded: the catalogue it was cut from, its entries, and where the file came from."""

    file: str
    origin: str  # "shipped", or the directory it was installed in / loaded from
    sha256: str
    catalog_version: str
    date_released: str
    catalog_count: int  # entries in the whole catalogue the file was cut from
    source: str  # a sentence for a person: what the data was made from
    entries: tuple[KevEntry, ...]

    def get(self, cve: str) -> KevEntry | None:
        return next((e for e in self.entries if e.cve == cve), None)

    def by_maker(self, maker: str) -> list[KevEntry]:
        return [e for e in self.entries if e.maker == maker]

    @property
    def knowledge(self) -> KnowledgeRef:
        return KnowledgeRef(
            kind="kev",
            name=self.file,
            origin=self.origin,
            version=f"catalogVersion {self.catalog_version} (released {self.date_released})",
            sha256=self.sha256,
        )


@dataclass(frozen=True, slots=True)
class VendorSelection:
    """Which entries of one KEV vendor a pack keeps: all of them, or those whose product matches."""

    vendor: str  # KEV vendorProject, compared case-insensitively
    maker: str | None  # the camscan maker (fingerprints/makers.yaml) the entries belong to
    products: re.Pattern[str] | None

    def takes(self, vendor: str, product: str) -> bool:
        if vendor.casefold() != self.vendor.casefold():
            return False
        return self.products is None or self.products.search(product) is not None


@dataclass(frozen=True, slots=True)
class KevSelection:
    """A pack's `kev:` header: its data file's name and which KEV entries are its concern."""

    file: str
    vendors: tuple[VendorSelection, ...]

    def maker_of(self, vendor: str, product: str) -> tuple[bool, str | None]:
        for v in self.vendors:
            if v.takes(vendor, product):
                return True, v.maker
        return False, None


def parse_selection(raw: Any, makers: Mapping[str, object]) -> KevSelection:
    """The `kev:` section of a pack header; ValueError with the reason when it is malformed."""
    if not isinstance(raw, dict) or set(raw) - {"file", "vendors"}:
        raise ValueError("'kev' must be a mapping with 'file' and 'vendors'")
    file = raw.get("file")
    if not isinstance(file, str) or not _FILE.match(file):
        raise ValueError("kev.file must be a bare file name ending in .yaml (lower-case [a-z0-9.-])")
    vendors: list[VendorSelection] = []
    for item in raw.get("vendors") or []:
        if not isinstance(item, dict) or set(item) - {"vendor", "maker", "products"}:
            raise ValueError(f"kev.vendors: each item is {{vendor, maker, products}}: {item!r}")
        vendor, maker, products = item.get("vendor"), item.get("maker"), item.get("products")
        if not isinstance(vendor, str) or not vendor.strip():
            raise ValueError(f"kev.vendors: vendor must be a non-empty string: {item!r}")
        if maker is not None and (not isinstance(maker, str) or maker not in makers):
            raise ValueError(f"kev.vendors: maker {maker!r} is not a name in fingerprints/makers.yaml")
        pattern = None
        if products is not None:
            if not isinstance(products, str):
                raise ValueError(f"kev.vendors: products of {vendor!r} must be a regular expression string")
            try:
                pattern = re.compile(products)
            except re.error as exc:
                raise ValueError(f"kev.vendors: products of {vendor!r}: bad pattern: {exc}") from None
        vendors.append(VendorSelection(vendor.strip(), maker, pattern))
    if not vendors:
        raise ValueError("kev.vendors must list at least one vendor")
    return KevSelection(file, tuple(vendors))


# ---------------------------------------------------------------------------------------------- the feed


@dataclass(frozen=True, slots=True)
class Feed:
    """CISA's catalogue as read from its JSON feed file, every field checked."""

    title: str
    catalog_version: str
    date_released: str
    count: int
    entries: tuple[dict[str, Any], ...]
    sha256: str


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InputError(f"the key {key[:40]!r} appears twice in one object")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise InputError(f"{name} is not a JSON number")


def _text(value: Any, where: str, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InputError(f"{where} must be a string, not {type(value).__name__}")
    if required and not value.strip():
        raise InputError(f"{where} is empty")
    if len(value) > MAX_TEXT:
        raise InputError(f"{where} is {len(value)} characters long ({MAX_TEXT} at most)")
    if any(ord(c) < 32 and c not in "\t\n\r" for c in value):
        raise InputError(f"{where} contains control characters")
    return value


def _date(value: str, where: str) -> None:
    try:
        if not _DATE.match(value):
            raise ValueError
        date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{where} must be a date YYYY-MM-DD, not {value[:40]!r}") from None


def parse_feed(data: bytes, name: str = "the feed") -> Feed:
    """Read and check CISA's KEV JSON feed (known_exploited_vulnerabilities.json). InputError names the first
    fault: too big, not JSON, not the catalogue's shape, a field of the wrong type, counts that disagree."""
    if len(data) > MAX_FEED:
        raise InputError(f"{name}: {len(data):,} bytes is more than a KEV catalogue ({MAX_FEED:,} at most)")
    try:
        text = data.decode("utf-8-sig")
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}: not valid JSON (truncated or damaged?): {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise InputError(f"{name}: JSON nested too deeply") from None
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from None
    if not isinstance(doc, dict):
        raise InputError(f"{name}: not a KEV catalogue (the top level is a {type(doc).__name__}, not an object)")
    missing = [k for k in ("title", "catalogVersion", "dateReleased", "count", "vulnerabilities") if k not in doc]
    if missing:
        raise InputError(f"{name}: not a KEV catalogue: no {', '.join(repr(m) for m in missing)}")
    title = _text(doc["title"], f"{name}: title", True)
    version = _text(doc["catalogVersion"], f"{name}: catalogVersion", True)
    released = _text(doc["dateReleased"], f"{name}: dateReleased", True)
    assert title is not None and version is not None and released is not None
    if not _CATALOG_VERSION.match(version):
        raise InputError(f"{name}: catalogVersion must look like 2025.08.25, not {version[:40]!r}")
    if not _RELEASED.match(released):
        raise InputError(f"{name}: dateReleased must be a timestamp like 2025-08-25T17:04:19Z, not {released[:40]!r}")
    _date(released[:10], f"{name}: dateReleased")
    count = doc["count"]
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise InputError(f"{name}: count must be a non-negative integer, not {str(count)[:40]!r}")
    vulns = doc["vulnerabilities"]
    if not isinstance(vulns, list):
        raise InputError(f"{name}: vulnerabilities must be a list, not {type(vulns).__name__}")
    if len(vulns) > MAX_ENTRIES:
        raise InputError(f"{name}: {len(vulns):,} entries is more than a KEV catalogue ({MAX_ENTRIES:,} at most)")
    if count != len(vulns):
        raise InputError(f"{name}: the catalogue says count {count} but lists {len(vulns)} entries (truncated?)")
    seen: set[str] = set()
    entries: list[dict[str, Any]] = []
    for i, raw in enumerate(vulns):
        where = f"{name}: vulnerabilities[{i}]"
        if not isinstance(raw, dict):
            raise InputError(f"{where} must be an object, not {type(raw).__name__}")
        cve = _text(raw.get("cveID"), f"{where}.cveID", True)
        assert cve is not None
        if not _CVE.match(cve):
            raise InputError(f"{where}.cveID must look like CVE-2021-36260, not {cve[:40]!r}")
        if cve in seen:
            raise InputError(f"{where}: {cve} is listed twice")
        seen.add(cve)
        entry: dict[str, Any] = {}
        for key, required in _ENTRY_TEXT.items():
            entry[key] = _text(raw.get(key), f"{where} ({cve}).{key}", required)
        _date(entry["dateAdded"], f"{where} ({cve}).dateAdded")
        if entry["dueDate"] is not None:
            _date(entry["dueDate"], f"{where} ({cve}).dueDate")
        cwes = raw.get("cwes")
        if cwes is not None and (not isinstance(cwes, list) or not all(isinstance(c, str) for c in cwes)):
            raise InputError(f"{where} ({cve}).cwes must be a list of strings")
        entries.append(entry)
    return Feed(title, version, released, count, tuple(entries), hashlib.sha256(data).hexdigest())


def select(feed: Feed, selection: KevSelection) -> list[KevEntry]:
    """The entries of the feed that are the pack's concern (its camera and recorder vendors), newest first."""
    out: list[KevEntry] = []
    for e in feed.entries:
        taken, maker = selection.maker_of(e["vendorProject"], e["product"])
        if taken:
            out.append(
                KevEntry(
                    cve=e["cveID"],
                    vendor=e["vendorProject"].strip(),
                    product=e["product"].strip(),
                    name=e["vulnerabilityName"].strip(),
                    date_added=e["dateAdded"],
                    due_date=e["dueDate"],
                    ransomware=e["knownRansomwareCampaignUse"],
                    required_action=e["requiredAction"],
                    description=e["shortDescription"],
                    notes=e["notes"],
                    maker=maker,
                )
            )
    out.sort(key=lambda k: (k.date_added, k.cve), reverse=True)
    return out


# ------------------------------------------------------------------------------------------ the data file

_HEADER = """\
# CISA Known Exploited Vulnerabilities: the entries of the catalogue below that are camscan's concern for
# this pack (camera and recorder makers, chosen by the pack's `kev.vendors`). Made by
# `camscan data update --kev known_exploited_vulnerabilities.json`: do not edit by hand; a newer catalogue
# replaces it. Source: https://www.cisa.gov/known-exploited-vulnerabilities-catalog (feed mirrored in
# https://github.com/cisagov/kev-data).
"""


def render_data(feed: Feed, entries: Sequence[KevEntry], source: str) -> bytes:
    """The data file for `entries` cut from `feed`: YAML, stable order, the catalogue's identity first."""
    doc = {
        "format": DATA_FORMAT,
        "catalog": {
            "title": feed.title,
            "catalogVersion": feed.catalog_version,
            "dateReleased": feed.date_released,
            "count": feed.count,
            "source": source,
            "feed_sha256": feed.sha256,
        },
        "entries": [
            {
                "cveID": e.cve,
                "vendorProject": e.vendor,
                "product": e.product,
                "vulnerabilityName": e.name,
                "dateAdded": e.date_added,
                "dueDate": e.due_date,
                "knownRansomwareCampaignUse": e.ransomware,
                "requiredAction": e.required_action,
                "shortDescription": e.description,
                "notes": e.notes,
                "maker": e.maker,
            }
            for e in entries
        ],
    }
    body = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)
    return (_HEADER + body).encode("utf-8")


def parse_data(data: bytes, file: str, origin: str, makers: Mapping[str, object]) -> KevData:
    """A pack's KEV data file (as render_data writes it). InputError when it is not one."""
    if len(data) > MAX_DATA:
        raise InputError(f"{file}: {len(data):,} bytes is more than a pack's KEV data ({MAX_DATA:,} at most)")
    try:
        doc = load_yaml(data)
    except yaml.YAMLError as exc:
        raise InputError(f"{file}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != DATA_FORMAT:
        raise InputError(f"{file}: not a camscan KEV data file (format {DATA_FORMAT})")
    cat, raw_entries = doc.get("catalog"), doc.get("entries")
    if not isinstance(cat, dict) or not isinstance(raw_entries, list):
        raise InputError(f"{file}: expected 'catalog' (a mapping) and 'entries' (a list)")
    version = _text(cat.get("catalogVersion"), f"{file}: catalog.catalogVersion", True)
    released = _text(cat.get("dateReleased"), f"{file}: catalog.dateReleased", True)
    count = cat.get("count")
    assert version is not None and released is not None
    if not _CATALOG_VERSION.match(version) or not isinstance(count, int) or isinstance(count, bool):
        raise InputError(f"{file}: catalog.catalogVersion or catalog.count is malformed")
    entries: list[KevEntry] = []
    for i, e in enumerate(raw_entries):
        where = f"{file}: entries[{i}]"
        if not isinstance(e, dict):
            raise InputError(f"{where} must be a mapping")
        cve = _text(e.get("cveID"), f"{where}.cveID", True)
        assert cve is not None
        if not _CVE.match(cve) or any(x.cve == cve for x in entries):
            raise InputError(f"{where}: bad or repeated cveID {cve[:40]!r}")
        maker = e.get("maker")
        if maker is not None and maker not in makers:
            raise InputError(f"{where} ({cve}): maker {maker!r} is not a name in fingerprints/makers.yaml")
        added = _text(e.get("dateAdded"), f"{where}.dateAdded", True)
        assert added is not None
        _date(added, f"{where}.dateAdded")
        entries.append(
            KevEntry(
                cve=cve,
                vendor=_text(e.get("vendorProject"), f"{where}.vendorProject", True) or "",
                product=_text(e.get("product"), f"{where}.product", True) or "",
                name=_text(e.get("vulnerabilityName"), f"{where}.vulnerabilityName", True) or "",
                date_added=added,
                due_date=_text(e.get("dueDate"), f"{where}.dueDate", False),
                ransomware=_text(e.get("knownRansomwareCampaignUse"), f"{where}.knownRansomwareCampaignUse", False),
                required_action=_text(e.get("requiredAction"), f"{where}.requiredAction", False),
                description=_text(e.get("shortDescription"), f"{where}.shortDescription", False),
                notes=_text(e.get("notes"), f"{where}.notes", False),
                maker=maker,
            )
        )
    return KevData(
        file=file,
        origin=origin,
        sha256=hashlib.sha256(data).hexdigest(),
        catalog_version=version,
        date_released=released,
        catalog_count=count,
        source=str(cat.get("source") or ""),
        entries=tuple(entries),
    )


# ------------------------------------------------------------------------------------ installed and shipped


def installed_path(directory: Path, file: str) -> Path | None:
    """The installed data file for `file` in camscan's data directory, if `camscan data update` put one there.
    A file whose digest differs from the manifest's is refused: an audit must not rest on an edited file."""
    manifest_path = directory / INSTALL_DIR / MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        record = manifest["files"].get(file)
        if record is None:
            return None
        path = directory / INSTALL_DIR / file
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except (OSError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise InputError(f"the installed KEV data in {directory / INSTALL_DIR} cannot be read: {exc}") from None
    if digest != record.get("sha256"):
        raise InputError(
            f"the installed KEV data file {path} changed since it was installed: run `camscan data update --kev` "
            "again (or `camscan data update --reset`)"
        )
    return path


def read_manifest(directory: Path) -> dict[str, Any] | None:
    path = directory / INSTALL_DIR / MANIFEST
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"the KEV manifest {path} cannot be read: {exc}") from None
    if not isinstance(doc, dict):
        raise InputError(f"the KEV manifest {path} is not an object")
    return doc


def load_data(
    selection: KevSelection, pack_dir: Path, makers: Mapping[str, object], installed_dir: Path | None
) -> KevData:
    """The pack's KEV data: the installed file when there is one in `installed_dir`, else the one beside the
    pack (pack_dir/kev/<file>)."""
    path = installed_path(installed_dir, selection.file) if installed_dir is not None else None
    origin = str(path.parent) if path is not None else "shipped"
    if path is None:
        path = pack_dir / INSTALL_DIR / selection.file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"the KEV data {path} cannot be read: {exc.strerror or exc}") from None
    return parse_data(data, selection.file, origin, makers)


def install(
    feed_path: Path,
    selections: Sequence[KevSelection],
    directory: Path,
    makers: Mapping[str, object],
    in_use: Mapping[str, KevData],
    allow_older: bool = False,
) -> list[KevData]:
    """Check the feed, cut each pack's entries from it and install the data files in `directory`/kev with a
    manifest, replacing what was there in one step; nothing is written if the feed is refused. A catalogue
    older than the data in use is refused unless `allow_older`."""
    try:
        raw = feed_path.read_bytes() if feed_path.stat().st_size <= MAX_FEED else None
    except OSError as exc:
        raise InputError(f"cannot read {feed_path}: {exc.strerror or exc}") from None
    if raw is None:
        raise InputError(f"{feed_path.name}: more than {MAX_FEED:,} bytes: not a KEV catalogue")
    feed = parse_feed(raw, feed_path.name)
    for sel in selections:
        current = in_use.get(sel.file)
        if current is not None and feed.catalog_version < current.catalog_version and not allow_older:
            raise InputError(
                f"{feed_path.name} is catalogVersion {feed.catalog_version}, older than the {current.catalog_version} "
                "in use: give a newer catalogue (or --allow-older to go back on purpose)"
            )
    installed = datetime.now(UTC).isoformat(timespec="seconds")
    source = (
        f"camscan data update --kev {feed_path.name} (sha256 {feed.sha256}), installed {installed}: "
        f"{len(feed.entries)} entries in the catalogue"
    )
    staging = directory / (INSTALL_DIR + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    files: dict[str, dict[str, Any]] = {}
    for sel in selections:
        entries = select(feed, sel)
        data = render_data(feed, entries, source)
        parse_data(data, sel.file, "check", makers)  # what is written must read back
        (staging / sel.file).write_bytes(data)
        files[sel.file] = {"sha256": hashlib.sha256(data).hexdigest(), "entries": len(entries)}
    manifest = {
        "source": feed_path.name,
        "feed_sha256": feed.sha256,
        "catalogVersion": feed.catalog_version,
        "dateReleased": feed.date_released,
        "count": feed.count,
        "installed": installed,
        "files": files,
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    target, old = directory / INSTALL_DIR, directory / (INSTALL_DIR + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)  # the new data appears whole, or not at all
    shutil.rmtree(old, ignore_errors=True)
    out = []
    for sel in selections:
        data_path = target / sel.file
        out.append(parse_data(data_path.read_bytes(), sel.file, str(target), makers))
    return out


def remove_installed(directory: Path) -> bool:
    """Go back to the shipped KEV data. True if installed data was removed."""
    target = directory / INSTALL_DIR
    if not target.exists():
        return False
    shutil.rmtree(target)
    return True
