"""The IEEE MAC address registry: who each address block was registered to, at every block size.

The IEEE Registration Authority assigns blocks of three sizes: MA-L (24-bit prefix, 16 M addresses), MA-M
(28-bit) and MA-S (36-bit); the last two are carved out of MA-L blocks registered to the IEEE itself, so a
MAC is looked up longest prefix first (36, then 28, then 24 bits). A registrant name is only a name: the
reviewed table in fingerprints/oui.yaml says which maker a name is (oui.py), never a substring of it.

Where the registry comes from, in order:
  1. an installed registry in camscan's data directory (`camscan oui update FILE...`): the IEEE's own CSV
     exports (oui.csv, mam.csv, oui36.csv; iab.csv too) or a Wireshark-format manuf file, as the user
     downloaded them, validated and kept verbatim with a record of when and what (registry.json);
  2. the shipped snapshot: the `pymanuf` package's manuf.txt, built monthly from those same IEEE exports
     (MA-L, MA-M, MA-S, IAB, CID) and released under a date version (2026.10.1 = the listing of 2026-10-01).
Every file used is hashed into the report's `scan.knowledge` (kind `registry`).

Parsing is pure (`parse_manuf`, `parse_ieee_csv`), bounded and tolerant: a malformed row is counted and
skipped, never fatal; a file with no usable row, or mostly malformed rows, is refused at install.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata, resources, util
from importlib.resources.abc import Traversable
from pathlib import Path

from scanner.errors import InputError
from scanner.model import KnowledgeRef

BITS = (36, 28, 24)  # longest prefix first
SHIPPED_PACKAGE = "pymanuf"
SHIPPED_FILE = "manuf.txt"
INSTALL_DIR = "oui"
MANIFEST = "registry.json"
MAX_FILE = 64 << 20  # an IEEE export is a few MB
MAX_NAME = 256
MIN_ROWS = 100  # fewer usable rows than this is not a registry export
MAX_BAD_SHARE = 0.05  # refused when more than this share of the rows cannot be read
_HEX = re.compile(r"^[0-9A-F]+$")
_TRAILING_COMMENT = re.compile(r"\s+#")
# The IEEE's CSV exports: file (as the IEEE names it) -> the prefix length of its assignments
IEEE_CSV_BITS = {"MA-L": 24, "MA-M": 28, "MA-S": 36, "IAB": 36, "CID": 24}


Blocks = dict[int, dict[int, str]]  # prefix length -> prefix value -> registrant name


@dataclass(slots=True)
class Parsed:
    """What one file gave: blocks by prefix length, and the rows that could not be read."""

    format: str
    blocks: Blocks = field(default_factory=lambda: {b: {} for b in BITS})
    rows: int = 0
    bad: int = 0
    bad_examples: list[str] = field(default_factory=list)

    def add(self, bits: int, prefix: int, name: str) -> None:
        self.blocks[bits][prefix] = name
        self.rows += 1

    def reject(self, lineno: int, why: str) -> None:
        self.bad += 1
        if len(self.bad_examples) < 5:
            self.bad_examples.append(f"line {lineno}: {why}")

    def counts(self) -> dict[int, int]:
        return {b: len(v) for b, v in self.blocks.items()}


def _clean_name(raw: str) -> str | None:
    """A registrant name with whitespace collapsed and invisible characters (zero-width spaces, soft hyphens,
    direction marks: some registrations carry them) dropped; None when nothing usable is left."""
    if not raw.isprintable():
        raw = "".join(ch if ch.isprintable() else (" " if ch in "\t\r\n" else "") for ch in raw)
    name = " ".join(raw.split())
    if not name or len(name) > MAX_NAME:
        return None
    return name


def _prefix(hex_digits: str, bits: int) -> int | None:
    """The top `bits` of an assignment written with at least bits/4 hex digits (more digits are zeros)."""
    digits = hex_digits.upper()
    if not _HEX.match(digits) or len(digits) * 4 < bits or len(digits) > 12:
        return None
    value = int(digits, 16) << (48 - 4 * len(digits))  # as a 48-bit address
    if value & ((1 << (48 - bits)) - 1):  # bits set beyond the prefix: not a block of this size
        return None
    return value >> (48 - bits)


def parse_manuf(text: str) -> Parsed:
    """A Wireshark-format manuf file: `PREFIX[/BITS] <TAB> short name [<TAB> full name]` per line, `#` comments.
    PREFIX is colon-, dash- or dot-separated hex (00:1B:C5, 00:55:DA:40:00:00/28); the full name is used when
    there is one (Wireshark's own file has a shortened name in the middle column). About 0.1 s for the whole
    registry: it runs once per process, on the first MAC looked up."""
    out = Parsed("manuf")
    sizes = {24: 6, 28: 7, 36: 9}  # hex digits of a prefix of each size
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line or line[0] == "#" or line.isspace():
            continue
        cols = [c for c in line.split("\t") if c.strip()] if "\t" in line else line.split(None, 1)
        if len(cols) < 2:
            out.reject(lineno, "no name")
            continue
        block = cols[0].strip()
        raw_name = cols[-1]
        if "#" in raw_name:
            raw_name = _TRAILING_COMMENT.split(raw_name, 1)[0]
        name = _clean_name(raw_name)
        prefix_text, _, bits_text = block.partition("/")
        digits = prefix_text.replace(":", "").replace("-", "").replace(".", "")
        if bits_text:
            if not bits_text.isdigit() or int(bits_text) not in sizes:
                out.reject(lineno, f"block of {bits_text[:20]!r} bits (24, 28 or 36 expected)")
                continue
            bits = int(bits_text)
        else:
            bits = len(digits) * 4
            if bits not in sizes:
                out.reject(lineno, f"a prefix of {len(digits)} hex digits (6, 7 or 9 expected)")
                continue
        value = int(digits, 16) if len(digits) <= 12 and _HEX.match(digits.upper()) else -1
        keep = len(digits) * 4 - bits
        if value < 0 or keep < 0 or value & ((1 << keep) - 1) or name is None:
            out.reject(lineno, "not a MAC block and a name")
            continue
        out.add(bits, value >> keep, name)
    return out


def parse_ieee_csv(text: str) -> Parsed:
    """One of the IEEE's CSV exports (oui.csv, mam.csv, oui36.csv, iab.csv, cid.csv): a header row
    `Registry,Assignment,Organization Name,Organization Address`, then one assignment a row."""
    out = Parsed("ieee-csv")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or [h.strip().lower() for h in header[:3]] != ["registry", "assignment", "organization name"]:
        raise InputError("not an IEEE registry CSV (expected the header Registry,Assignment,Organization Name,...)")
    for lineno, row in enumerate(reader, 2):
        if len(row) < 3:
            out.reject(lineno, "fewer than 3 columns")
            continue
        bits = IEEE_CSV_BITS.get(row[0].strip().upper())
        name = _clean_name(row[2])
        prefix = _prefix(row[1].strip(), bits) if bits else None
        if bits is None or prefix is None or name is None:
            out.reject(lineno, f"not an assignment ({row[0][:10]!r}, {row[1][:16]!r})")
            continue
        out.add(bits, prefix, name)
    return out


def parse_file(name: str, data: bytes) -> Parsed:
    """Either format, told apart by the first line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    first = text.lstrip()[:60].lower()
    return parse_ieee_csv(text) if first.startswith("registry,") else parse_manuf(text)


@dataclass(slots=True)
class RegistryFile:
    name: str
    sha256: str
    format: str
    counts: dict[int, int]


@dataclass(slots=True)
class Registry:
    """Registrants by block, with where they came from. The files are read and hashed when the registry is
    made (so the report names them); they are parsed on the first lookup (~0.15 s for the whole registry),
    so a command that never sees a MAC never pays for it. `lookup` is then three dict reads."""

    source: str  # a sentence for a person: what the data is
    date: str  # the date of the listing (shipped) or of the install
    origin: str  # "shipped" or the directory it was installed in
    files: list[RegistryFile]
    raw: list[tuple[str, bytes]]  # (file name, bytes), until parsed
    _blocks: Blocks | None = None

    @property
    def blocks(self) -> Blocks:
        if self._blocks is None:
            parts = [parse_file(name, data) for name, data in self.raw]
            self._blocks = _merge(parts)
            for f, part in zip(self.files, parts, strict=True):
                f.format, f.counts = part.format, part.counts()
            self.raw = []
        return self._blocks

    def lookup(self, mac: str) -> tuple[str | None, int]:
        """(registrant, prefix length) for a normalised MAC `aa:bb:cc:dd:ee:ff`; (None, 0) when unregistered,
        locally administered or multicast (a randomised phone address, a VM, a group address)."""
        value = int(mac.replace(":", ""), 16)
        if (value >> 40) & 0x03:
            return None, 0
        for bits in BITS:
            name = self.blocks[bits].get(value >> (48 - bits))
            if name is not None:
                return name, bits
        return None, 0

    def counts(self) -> dict[int, int]:
        return {b: len(v) for b, v in self.blocks.items()}

    def names(self) -> set[str]:
        return {n for table in self.blocks.values() for n in table.values()}

    def knowledge(self) -> list[KnowledgeRef]:
        return [
            KnowledgeRef(kind="registry", name=f.name, origin=self.origin, version=self.date, sha256=f.sha256)
            for f in self.files
        ]


def _merge(parts: Iterable[Parsed]) -> Blocks:
    blocks: Blocks = {b: {} for b in BITS}
    for p in parts:
        for bits, table in p.blocks.items():
            blocks[bits].update(table)
    return blocks


def _shipped_file() -> Traversable:
    """The pymanuf package's data file, found without importing the package (its import parses the whole
    file, ~0.1-0.2 s that every command would pay for nothing: camscan parses it itself)."""
    spec = util.find_spec(SHIPPED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / SHIPPED_FILE
        if path.is_file():
            return path
    return resources.files(SHIPPED_PACKAGE) / SHIPPED_FILE  # not on a plain directory: import it after all


def shipped_registry() -> Registry:
    """The snapshot shipped with camscan (the pymanuf package's data file, version = the listing's date)."""
    data = _shipped_file().read_bytes()
    version = metadata.version(SHIPPED_PACKAGE)
    parts = version.split(".")
    date = version
    if len(parts) >= 2 and all(p.isdigit() for p in parts[:3]):
        date = f"{int(parts[0]):04d}-{int(parts[1]):02d}-{int(parts[2]) if len(parts) > 2 else 1:02d}"
    return Registry(
        source=f"{SHIPPED_PACKAGE} {version}: the IEEE MA-L, MA-M, MA-S, IAB and CID listings",
        date=date,
        origin="shipped",
        files=[RegistryFile(SHIPPED_FILE, hashlib.sha256(data).hexdigest(), "manuf", {})],
        raw=[(SHIPPED_FILE, data)],
    )


def installed_registry(directory: Path) -> Registry | None:
    """The registry `camscan oui update` installed in `directory`/oui, or None. A file that changed since it
    was installed (its digest differs from the manifest) is refused: an audit must not rest on it."""
    manifest_path = directory / INSTALL_DIR / MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        raw: list[tuple[str, bytes]] = []
        files: list[RegistryFile] = []
        for entry in manifest["files"]:
            name = Path(str(entry["name"])).name  # never a path out of the directory
            data = (directory / INSTALL_DIR / name).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if digest != entry["sha256"]:
                raise InputError(
                    f"the installed registry file {name} changed since it was installed "
                    f"({digest[:12]} is not {str(entry['sha256'])[:12]}): run `camscan oui update` again"
                )
            raw.append((name, data))
            files.append(RegistryFile(name, digest, str(entry.get("format", "")), {}))
        return Registry(
            source=str(manifest["source"]),
            date=str(manifest["installed"])[:10],
            origin=str(directory / INSTALL_DIR),
            files=files,
            raw=raw,
        )
    except (OSError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"the installed registry in {directory / INSTALL_DIR} cannot be read: {exc}") from None


def load_registry(directory: Path | None) -> Registry:
    """The installed registry when there is one in `directory` (camscan's data directory), else the shipped."""
    installed = installed_registry(directory) if directory is not None else None
    return installed or shipped_registry()


def validate(name: str, data: bytes) -> Parsed:
    """A file fit to install: not too big, one of the formats, enough rows, few unreadable ones."""
    if len(data) > MAX_FILE:
        raise InputError(f"{name}: {len(data)} bytes is more than a registry export ({MAX_FILE} at most)")
    try:
        parsed = parse_file(name, data)
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from None
    total = parsed.rows + parsed.bad
    if parsed.rows < MIN_ROWS:
        raise InputError(f"{name}: only {parsed.rows} usable rows: not a registry export")
    if total and parsed.bad / total > MAX_BAD_SHARE:
        raise InputError(
            f"{name}: {parsed.bad} of {total} rows cannot be read (first: {'; '.join(parsed.bad_examples[:2])})"
        )
    return parsed


def install(paths: list[Path], directory: Path) -> Registry:
    """Validate the files, then install them in `directory`/oui (replacing what was there) with a manifest;
    nothing is installed if any file is refused. Returns the registry now in use."""
    checked: list[tuple[Path, bytes, Parsed]] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        checked.append((path, data, validate(path.name, data)))
    names = [p.name for p, _, _ in checked]
    if len(set(names)) != len(names):
        raise InputError(f"two files with the same name: {names}")
    if not any(parsed.blocks[24] for _, _, parsed in checked):
        raise InputError("no MA-L (24-bit) assignments in these files: give oui.csv (or a manuf file) too")
    target = directory / INSTALL_DIR
    staging = directory / (INSTALL_DIR + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for path, data, _ in checked:
        (staging / path.name).write_bytes(data)
    kinds = sorted({parsed.format for _, _, parsed in checked})
    manifest = {
        "source": f"installed by camscan oui update: {', '.join(names)} ({', '.join(kinds)})",
        "installed": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": [
            {"name": p.name, "sha256": hashlib.sha256(d).hexdigest(), "format": parsed.format}
            for p, d, parsed in checked
        ],
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    old = directory / (INSTALL_DIR + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)  # the new registry appears whole, or not at all
    shutil.rmtree(old, ignore_errors=True)
    registry = installed_registry(directory)
    assert registry is not None
    return registry


def remove_installed(directory: Path) -> bool:
    """Go back to the shipped snapshot. True if an installed registry was removed."""
    target = directory / INSTALL_DIR
    if not target.exists():
        return False
    shutil.rmtree(target)
    return True
