"""Reports: JSON export with integrity, schema, HTML and CSV against hostile device strings, diff, packs."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest

from scanner._data import data_dir
from scanner.evidence_lines import read_hosts
from scanner.knowledge import Knowledge
from scanner.model import VALUE_CAP, ScanReport
from scanner.policy.packs import PackError, check_examples, load_pack
from scanner.report.build import Run, build_report
from scanner.report.csv_export import render_csv
from scanner.report.diff import diff_reports
from scanner.report.export import report_document, verify_document
from scanner.report.html import render_html
from tests.report_fixtures import BIG, FORMULAS, PACK, write_hostile


def camscan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanner", *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("packs")
    (d / "test-regime.yaml").write_text(PACK)
    return d


@pytest.fixture(scope="module")
def pack(shipped_engine, pack_dir: Path):  # type: ignore[no-untyped-def]
    return load_pack(pack_dir / "test-regime.yaml", shipped_engine.ruleset.makers)


@pytest.fixture(scope="module")
def hostile_report(shipped_engine, pack, tmp_path_factory: pytest.TempPathFactory) -> ScanReport:  # type: ignore[no-untyped-def]
    path = write_hostile(tmp_path_factory.mktemp("ev") / "hostile.jsonl")
    errors: list[str] = []
    with path.open() as fh:
        hosts = list(read_hosts(fh, path.name, errors))
        return build_report(hosts, Knowledge(shipped_engine, [pack]), run=Run([], errors=errors))


def test_test_pack_examples_hold(pack) -> None:  # type: ignore[no-untyped-def]
    assert all(c.ok for c in check_examples([pack]))


def test_bad_lines_are_recorded_and_skipped(hostile_report: ScanReport) -> None:
    assert [d.id for d in hostile_report.devices][:1] == ["hostile-1"]
    # the same rules as `camscan identify`: a line with a malformed item is refused whole, and said so
    assert {d.id for d in hostile_report.devices} == {"hostile-1", "<b onmouseover=alert(1)>bold</b>"}
    assert any(e.startswith("hostile.jsonl:3: not valid JSON") for e in hostile_report.errors)
    assert "hostile.jsonl:4: evidence[1] needs string 'key' and 'value'; line skipped" in hostile_report.errors


def test_huge_values_are_capped_in_the_model(hostile_report: ScanReport) -> None:
    dev = hostile_report.devices[0]
    banner = next(e for e in dev.evidence if e.key == "telnet.banner")
    assert len(banner.value) == VALUE_CAP
    assert max(len(e.value) for e in dev.evidence) <= 65536


def test_json_digest_verifies_and_one_byte_change_fails(hostile_report: ScanReport, tmp_path: Path) -> None:
    from scanner.report.export import write_json

    path = tmp_path / "r.json"
    digest = write_json(hostile_report, path)
    doc = json.loads(path.read_text())
    assert doc["integrity"] == {"algorithm": "sha256", "digest": digest}
    assert verify_document(doc) == (True, f"sha256 {digest}")
    ok = camscan("verify", str(path))
    assert ok.returncode == 0 and "OK" in ok.stdout
    raw = path.read_bytes()
    i = raw.index(b'"10.77.0.66"') + 2  # change one byte of an IP address
    path.write_bytes(raw[:i] + b"9" + raw[i + 1 :])
    bad = camscan("verify", str(path))
    assert bad.returncode == 1 and "digest mismatch" in bad.stdout


def test_digest_is_over_the_documented_canonical_form(hostile_report: ScanReport) -> None:
    import hashlib

    doc = report_document(hostile_report)
    body = {k: v for k, v in doc.items() if k != "integrity"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert doc["integrity"]["digest"] == hashlib.sha256(canonical).hexdigest()


def test_report_validates_against_the_committed_schema(hostile_report: ScanReport) -> None:
    schema = json.loads((data_dir("reports") / "schema" / "scan-report.schema.json").read_text())
    jsonschema.validate(report_document(hostile_report), schema)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def test_html_escapes_every_device_string(hostile_report: ScanReport) -> None:
    html = render_html(hostile_report)
    parser = _Tags()
    parser.feed(html)
    assert not [t for t, _ in parser.tags if t in ("script", "img", "iframe", "object", "embed", "b")]
    assert not [(t, a) for t, attrs in parser.tags for a, _ in attrs if a.lower().startswith("on")]
    assert "&lt;script&gt;document.title=" in html
    assert "<b onmouseover" not in html and "&lt;b" in html  # the hostile device id, in an anchor, as text
    assert BIG not in html and len(html) < 400_000  # the 200 kB banner is cut for display
    assert "Content-Security-Policy" in html


def test_csv_neutralises_formulas_and_caps_cells(hostile_report: ScanReport) -> None:
    rows = list(csv.reader(io.StringIO(render_csv(hostile_report))))
    header, body = rows[0], rows[1:]
    assert header[:4] == ["id", "ip", "mac", "manufacturer"]
    assert len(body) == len(hostile_report.devices) == 2  # the malformed line is skipped (test above)
    for row in body:
        for value in row:
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
            assert len(value) <= 1025
    flat = "\n".join(",".join(r) for r in body)
    assert "'" + FORMULAS[3] in flat  # the host name, kept, but as text


def test_broken_pack_is_refused_with_file_rule_and_reason(shipped_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text(PACK.replace("manufacturer: [Hikvision, Dahua]", "manufacturer: [HIKVISION]"))
    with pytest.raises(PackError) as info:
        load_pack(bad, shipped_engine.ruleset.makers)
    assert (info.value.file, info.value.rule) == ("bad.yaml", "covered-maker")
    assert "not a canonical maker" in str(info.value)
    bad.write_text(PACK.replace("value: '^(8000|37777)/tcp$'", "value: '(unclosed'"))
    with pytest.raises(PackError, match=r"sdk-port.*bad pattern"):
        load_pack(bad, shipped_engine.ruleset.makers)
    bad.write_text(
        PACK.replace('citations: [far]\n    remediation: "Close', 'citations: [nope]\n    remediation: "Close')
    )
    with pytest.raises(PackError, match=r"not in pack\.citations"):
        load_pack(bad, shipped_engine.ruleset.makers)


def _hosts_file(path: Path, hosts: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(h) + "\n" for h in hosts))
    return path


def test_diff_lists_new_gone_and_changed(tmp_path: Path, pack_dir: Path) -> None:
    def h(hid: str, ip: str, mac: str, *ev: tuple[str, str]) -> dict[str, object]:
        return {"id": hid, "ip": ip, "mac": mac, "evidence": [{"key": k, "value": v} for k, v in ev]}

    axis = h("axis", "10.77.0.31", "ac:cc:8e:12:34:31", ("http.server", "Apache"))
    old_hosts = [
        axis,
        h(
            "cam",
            "10.77.0.11",
            "44:19:b6:00:00:11",
            ("onvif.model", "DS-2CD2143G0-I"),
            ("onvif.firmware", "V5.5.0 build 170725"),
        ),
        h("gone", "10.77.0.50", "f8:ce:07:00:00:50", ("http.server", "App-webs/")),
    ]
    new_hosts = [
        axis,
        # same MAC, new address and firmware, SDK port now open
        h(
            "cam",
            "10.77.0.12",
            "44:19:b6:00:00:11",
            ("onvif.model", "DS-2CD2143G0-I"),
            ("onvif.firmware", "V5.7.3 build 220112"),
            ("port.open", "8000/tcp"),
        ),
        h("new", "10.77.0.60", "e0:50:8b:00:00:60", ("port.open", "37777/tcp"), ("onvif.model", "IPC-HDW2431T-AS")),
    ]
    paths = []
    for name, hosts in (("old", old_hosts), ("new", new_hosts)):
        ev = _hosts_file(tmp_path / f"{name}.jsonl", hosts)
        out = tmp_path / f"{name}.json"
        proc = camscan(
            "report",
            "--evidence",
            str(ev),
            "--json",
            str(out),
            "--policy-dir",
            str(pack_dir),
            "--policy",
            "test-regime",
        )
        assert proc.returncode == 0, proc.stderr
        paths.append(out)
    from scanner.report.export import load_report

    d = diff_reports(load_report(paths[0]), load_report(paths[1]))
    assert [x.id for x in d.new] == ["new"] and [x.id for x in d.gone] == ["gone"]
    assert [c.device.id for c in d.changed] == ["cam"]
    change = d.changed[0]
    assert change.changes["ip"] == ("10.77.0.11", "10.77.0.12")
    assert "firmware" in change.changes
    assert change.findings_new == ["test-regime/sdk-port"] and change.findings_resolved == []
    proc = camscan("diff", str(paths[0]), str(paths[1]))
    assert proc.returncode == 0
    assert "+ new" in proc.stdout and "- gone" in proc.stdout and "~ changed 10.77.0.12" in proc.stdout
    assert "1 new, 1 gone, 1 changed" in proc.stdout
    as_json = json.loads(camscan("diff", "--json", str(paths[0]), str(paths[1])).stdout)
    assert as_json["changed"][0]["findings_new"] == ["test-regime/sdk-port"]


def test_rerender_from_json(tmp_path: Path, pack_dir: Path) -> None:
    ev = write_hostile(tmp_path / "h.jsonl")
    out = tmp_path / "r.json"
    assert camscan("report", "--evidence", str(ev), "--json", str(out), "--policy-dir", str(pack_dir)).returncode == 0
    proc = camscan("report", str(out), "--html", str(tmp_path / "r.html"), "--csv", str(tmp_path / "r.csv"))
    assert proc.returncode == 0, proc.stderr
    assert "hostile-1" in (tmp_path / "r.csv").read_text()
    assert "&lt;script&gt;" in (tmp_path / "r.html").read_text()


def test_unknown_policy_id_is_a_clear_error(tmp_path: Path) -> None:
    ev = _hosts_file(tmp_path / "e.jsonl", [{"id": "a", "evidence": []}])
    proc = camscan("report", "--evidence", str(ev), "--policy", "no-such-pack")
    assert proc.returncode == 2 and "no such pack" in proc.stderr
