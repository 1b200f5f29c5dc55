"""The IEEE MAC registry: both file formats, longest-prefix lookup over MA-L, MA-M and MA-S, an installed registry
taking precedence over the shipped snapshot (and named in the report), refusal of bad files with nothing
installed, and the audit that keeps a covered maker's new block from being dropped silently."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.errors import InputError
from scanner.fingerprint.engine import Engine
from scanner.fingerprint.oui import Suspect, audit
from scanner.fingerprint.registry import (
    install,
    installed_registry,
    load_registry,
    parse_ieee_csv,
    parse_manuf,
    remove_installed,
    shipped_registry,
)
from scanner.fingerprint.rules import RuleSet, load_ruleset
from scanner.knowledge import Knowledge

EZVIZ = "Hangzhou Ezviz Software Co.,Ltd."
NEW_EZVIZ_BLOCK = "0C0000"  # not registered to anyone in the shipped snapshot (checked below)
FILLER = [f"{0x0C1000 + i:06X}" for i in range(150)]  # enough rows to be taken for a registry export


def ieee_csv(rows: list[tuple[str, str, str]]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["Registry", "Assignment", "Organization Name", "Organization Address"])
    for registry, assignment, name in rows:
        w.writerow([registry, assignment, name, "Somewhere 1 CN"])
    return out.getvalue()


@pytest.fixture
def ieee_files(tmp_path: Path) -> list[Path]:
    oui = tmp_path / "oui.csv"
    oui.write_text(
        ieee_csv(
            [("MA-L", NEW_EZVIZ_BLOCK, EZVIZ), ("MA-L", "0C2000", "IEEE Registration Authority")]
            + [("MA-L", a, f"Filler Company {i}, Inc.") for i, a in enumerate(FILLER)]
        )
    )
    mam = tmp_path / "mam.csv"
    mam.write_text(
        ieee_csv(
            [("MA-M", "0C20001", "Zhejiang Dahua Technology Co., Ltd.")]
            + [("MA-M", f"0C2001{i:X}", f"Small Maker {i}") for i in range(2, 16)]
            + [("MA-M", f"0C3000{i:X}", f"Another Small Maker {i}") for i in range(16)] * 7
        )
    )
    oui36 = tmp_path / "oui36.csv"
    oui36.write_text(
        ieee_csv(
            [("MA-S", "0C2000ABC", "Hangzhou Hikvision Digital Technology Co.,Ltd.")]
            + [("MA-S", f"0C2000{i:03X}", f"Tiny Maker {i}") for i in range(110)]
        )
    )
    return [oui, mam, oui36]


def test_manuf_format_both_flavours_and_comments() -> None:
    parsed = parse_manuf(
        "# a comment\n"
        "00:00:0C\tCisco\tCisco Systems, Inc\n"  # Wireshark: short name, then the full name
        "00:55:DA:40:00:00/28\t\tDatapath Limited\n"  # pymanuf: no short name
        "00:1B:C5:00:10:00/36\tOpenRB\tOpenRB.com, Direct SIA\n"
        "00:00:00\t00:00:00\tOfficially Xerox, but 0:0:0:0:0:0 is more common  # an old trailing comment\n"
        "zz:zz:zz\tBad\tBad Inc\n"
        "00:11:22/20\tWrong\tWrong size\n"
    )
    assert parsed.blocks[24] == {0x00000C: "Cisco Systems, Inc", 0: "Officially Xerox, but 0:0:0:0:0:0 is more common"}
    assert parsed.blocks[28] == {0x0055DA4: "Datapath Limited"}
    assert parsed.blocks[36] == {0x001BC5001: "OpenRB.com, Direct SIA"}
    assert parsed.bad == 2 and parsed.rows == 4


def test_ieee_csv_format_and_refusal_of_other_csv() -> None:
    parsed = parse_ieee_csv(
        ieee_csv([("MA-L", "4419B6", "Hangzhou Hikvision Digital Technology Co.,Ltd."), ("MA-M", "ABCDEF1", "X, Y")])
        + "MA-S,NOTHEX,Bad,\nMA-Q,123456,Unknown registry,\n"
    )
    assert parsed.blocks[24] == {0x4419B6: "Hangzhou Hikvision Digital Technology Co.,Ltd."}
    assert parsed.blocks[28] == {0xABCDEF1: "X, Y"}
    assert parsed.bad == 2
    with pytest.raises(InputError, match="not an IEEE registry CSV"):
        parse_ieee_csv("a,b,c\n1,2,3\n")


def test_longest_prefix_wins_and_local_addresses_have_no_registrant(ieee_files: list[Path], tmp_path: Path) -> None:
    reg = install(ieee_files, tmp_path / "data")
    assert reg.lookup("0c:20:00:ab:c1:23") == ("Hangzhou Hikvision Digital Technology Co.,Ltd.", 36)
    assert reg.lookup("0c:20:00:01:23:45") == ("Tiny Maker 18", 36)
    assert reg.lookup("0c:20:00:1f:00:01") == ("Zhejiang Dahua Technology Co., Ltd.", 28)
    assert reg.lookup("0c:20:00:f1:23:45") == ("IEEE Registration Authority", 24)
    assert reg.lookup("0c:00:00:12:34:56") == (EZVIZ, 24)
    assert reg.lookup("0e:00:00:12:34:56") == (None, 0)  # locally administered
    assert reg.lookup("0d:00:00:12:34:56") == (None, 0)  # multicast


def test_the_shipped_snapshot_has_all_three_block_sizes() -> None:
    reg = shipped_registry()
    counts = reg.counts()
    assert counts[24] > 30_000 and counts[28] > 5_000 and counts[36] > 5_000
    assert reg.date.startswith("20") and reg.origin == "shipped"
    # a block netaddr's 2024 bundle could not resolve (MA-M) now names its registrant
    assert reg.lookup("7c:e4:a1:71:23:56") == ("Keenfinity S.A.", 28)


def test_an_installed_registry_takes_precedence_and_identifies_a_new_block(
    ieee_files: list[Path], tmp_path: Path
) -> None:
    mac = "0c:00:00:12:34:56"
    shipped = Engine(load_ruleset(registry_dir=tmp_path / "empty"))
    assert shipped.ruleset.oui is not None and shipped.ruleset.oui.registry.lookup(mac) == (None, 0)
    assert shipped.identify([("mac", mac)]).manufacturer is None
    data = tmp_path / "data"
    install(ieee_files, data)
    engine = Engine(load_ruleset(registry_dir=data))
    result = engine.identify([("mac", mac)])
    assert (result.manufacturer, result.brand) == ("Hikvision", "EZVIZ")  # a flagged device no longer missed
    refs = [k for k in Knowledge(engine, []).refs() if k.kind == "registry"]
    assert [(k.name, k.origin) for k in refs] == [(p.name, str(data / "oui")) for p in ieee_files]
    assert remove_installed(data) and load_registry(data).origin == "shipped"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("Registry,Assignment,Organization Name,Organization Address\nMA-L,001122,Only One,\n", "only 1 usable rows"),
        ("", "only 0 usable rows"),
        ("x" * 100, "only 0 usable rows"),
        (ieee_csv([("MA-L", f"{i:06X}", "Ok") for i in range(200)]) + "MA-L,ZZ,Bad,\n" * 50, "cannot be read"),
    ],
)
def test_a_bad_file_is_refused_and_nothing_is_installed(
    ieee_files: list[Path], tmp_path: Path, content: str, message: str
) -> None:
    data = tmp_path / "data"
    install(ieee_files, data)
    before = (data / "oui" / "registry.json").read_text()
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    with pytest.raises(InputError, match=message):
        install([*ieee_files[:1], bad], data)
    assert (data / "oui" / "registry.json").read_text() == before  # the earlier install is untouched


def test_a_changed_installed_file_is_refused(ieee_files: list[Path], tmp_path: Path) -> None:
    data = tmp_path / "data"
    install(ieee_files, data)
    (data / "oui" / "mam.csv").write_text((data / "oui" / "mam.csv").read_text() + "MA-M,ABCDEF1,Sneaky,\n")
    with pytest.raises(InputError, match="changed since it was installed"):
        installed_registry(data)


def covered_of(ruleset):  # type: ignore[no-untyped-def]
    covered = {m.name for m in ruleset.makers.values() if m.covered}
    return covered | {o.brand for o in ruleset.oem if o.maker in covered and o.relationship != "oem_reported"}


def test_the_shipped_registry_has_no_unclassified_name_of_a_covered_maker() -> None:
    """Every registrant name in the shipped registry that looks like Hikvision, Dahua, Huawei, ZTE, Hytera or a
    brand of theirs is either mapped to its maker or listed as a look-alike in fingerprints/oui.yaml."""
    ruleset = load_ruleset()
    assert ruleset.oui is not None and ruleset.names is not None
    found = audit(ruleset.oui, ruleset.makers, covered_of(ruleset), ruleset.names.generic_words)
    unclassified = [f"{s.registrant} (looks like {s.looks_like}, {s.blocks} blocks)" for s in found if s.covered]
    assert not unclassified, "classify these in fingerprints/oui.yaml:\n" + "\n".join(unclassified)


def _audit_with(row: str, ieee_files: list[Path], data: Path) -> tuple[RuleSet, list[Suspect]]:
    """The audit of a registry installed from the IEEE test files plus one more MA-L row."""
    ieee_files[0].write_text(ieee_files[0].read_text() + row + "\n")
    install(ieee_files, data)
    ruleset = load_ruleset(registry_dir=data)
    assert ruleset.oui is not None and ruleset.names is not None
    return ruleset, audit(ruleset.oui, ruleset.makers, covered_of(ruleset), ruleset.names.generic_words)


def test_the_audit_catches_a_new_name_of_a_covered_maker(tmp_path: Path, ieee_files: list[Path]) -> None:
    row = 'MA-L,0C4000,"Wuhan Hikvision Intelligent Manufacturing Co.,Ltd.",Wuhan CN'
    _, found = _audit_with(row, ieee_files, tmp_path / "data")
    hits = [(s.registrant, s.looks_like, s.covered) for s in found if s.covered]
    assert hits == [("Wuhan Hikvision Intelligent Manufacturing Co.,Ltd.", "Hikvision", True)]


def test_the_shipped_registry_has_no_unclassified_name_at_all() -> None:
    """`camscan oui audit` on the shipped registry lists nothing: every registrant name that looks like a known
    maker was reviewed, mapped or listed as a look-alike (fingerprints/oui.yaml)."""
    ruleset = load_ruleset()
    assert ruleset.oui is not None and ruleset.names is not None
    found = audit(ruleset.oui, ruleset.makers, covered_of(ruleset), ruleset.names.generic_words)
    assert not found, "classify these in fingerprints/oui.yaml:\n" + "\n".join(s.registrant for s in found)


def test_the_audit_leaves_out_company_ids(tmp_path: Path, ieee_files: list[Path]) -> None:
    """A block with the local bit set (an IEEE Company ID) holds no device's MAC: lookup never resolves it, so
    the audit does not ask for it to be classified."""
    row = 'MA-L,0A5000,"Wuhan Hikvision Cid Holder Co.,Ltd.",Wuhan CN'
    ruleset, found = _audit_with(row, ieee_files, tmp_path / "data")
    assert not [s for s in found if "Cid Holder" in s.registrant]
    assert Engine(ruleset).identify([("mac", "0a:50:00:12:34:56")]).manufacturer is None


def test_a_registrant_spelled_with_a_combining_accent_is_the_same_name(tmp_path: Path, ieee_files: list[Path]) -> None:
    """The IEEE spells some names with a combining diaeresis (`Wa\u0308chter`); the table writes them precomposed."""
    oui = ieee_files[0]
    oui.write_text(oui.read_text() + "MA-L,0C5000,Burg-Wa\u0308chter Kg,Wetter DE\n", encoding="utf-8")
    data = tmp_path / "data"
    install(ieee_files, data)
    engine = Engine(load_ruleset(registry_dir=data))
    assert engine.identify([("mac", "0c:50:00:12:34:56")]).manufacturer == "Burg-W\u00e4chter"


@pytest.mark.parametrize(
    ("mac", "manufacturer", "why"),
    [
        ("70:1a:d5:78:9a:bc", "Avigilon", "Avigilon Alta, Motorola Solutions' cloud line"),
        ("10:dc:b6:58:9a:bc", "Milesight", "Milesight Taiwan, an MA-M block"),
        ("28:fd:80:38:9a:bc", "NUUO", "NUUO's newer MA-M block, a new spelling"),
        ("00:16:2f:78:9a:bc", "Geutebr\u00fcck", "a name with a non-ASCII letter"),
        ("00:0c:ab:78:9a:bc", "Commend", "an intercom maker"),
        ("ec:15:fe:78:9a:bc", "Hikvision", "Hikvision's storage subsidiary (device type other: a note, not a finding)"),
        ("20:2c:05:12:34:56", "Dahua", "Zhejiang Dahua Zhilian, kept mapped while unconfirmed"),
        ("ac:64:dd:50:00:56", "ZTE", "Shanghai ZTE Technologies, at ZTE's Shanghai campus"),
        ("e4:28:a4:12:34:56", "Prama", "Prama India: a label that names no other maker"),
        # look-alikes name no maker
        ("00:0a:28:78:9a:bc", None, "Motorola Mobility's phones are not Avigilon"),
        ("10:74:6f:78:9a:bc", None, "Motorola Solutions' Penang radio site is not Avigilon"),
        ("8c:1d:55:78:9a:bc", None, "Hanwha NxMD is not Hanwha Vision"),
        ("8c:1f:64:8b:6a:bc", None, "AXIS Sp. z o.o. (Gdansk) is not Axis Communications"),
        ("50:62:55:78:9a:bc", None, "AVTECH Software is not AVTECH the camera maker"),
        ("30:2f:ac:78:9a:bc", None, "HuaRay, machine vision, treated like Hikrobot"),
    ],
)
def test_reviewed_registrant_names(mac: str, manufacturer: str | None, why: str) -> None:
    engine = Engine(load_ruleset())
    assert engine.identify([("mac", mac)]).manufacturer == manufacturer, why


def camscan(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanner", *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )


def test_cli_update_status_audit_and_a_report_naming_the_registry(ieee_files: list[Path], tmp_path: Path) -> None:
    import os

    data = tmp_path / "data"
    up = camscan("oui", "update", *map(str, ieee_files), "--data-dir", str(data))
    assert up.returncode == 0, up.stderr
    assert "installed in" in up.stderr and "0 of them look like a covered maker" in up.stdout
    status = camscan("oui", "status", "--data-dir", str(data))
    assert status.returncode == 0 and "installed by camscan oui update: oui.csv, mam.csv, oui36.csv" in status.stdout
    assert "MA-M (28-bit)" in status.stdout
    env = {**os.environ, "CAMSCAN_DATA_DIR": str(data)}
    hosts = tmp_path / "hosts.jsonl"
    hosts.write_text(json.dumps({"id": "cam", "evidence": [{"key": "mac", "value": "0c:00:00:12:34:56"}]}) + "\n")
    ident = camscan("identify", str(hosts), "-j", "1", env=env)
    assert json.loads(ident.stdout)["brand"] == "EZVIZ", ident.stderr
    out = tmp_path / "r.json"
    rep = camscan("report", "--evidence", str(hosts), "--json", str(out), env=env)
    assert rep.returncode == 0, rep.stderr
    knowledge = json.loads(out.read_text())["scan"]["knowledge"]
    assert [k["name"] for k in knowledge if k["kind"] == "registry"] == ["oui.csv", "mam.csv", "oui36.csv"]
    refused = camscan("oui", "update", str(tmp_path / "hosts.jsonl"), "--data-dir", str(data))
    assert refused.returncode == 2 and "error: hosts.jsonl: only 0 usable rows" in refused.stderr
    reset = camscan("oui", "update", "--reset", "--data-dir", str(data))
    assert reset.returncode == 0 and "origin: shipped" in reset.stdout
