"""The HTML report looked at in a real headless browser (Debian's chromium), not only parsed.

The report of the sample hosts plus hostile ones is loaded from a file:// URL; the DOM after load must
show the summary, the flagged devices and their evidence, and no device string may have run as script
(a payload sets document.title if it ever runs). A screenshot is taken and checked to be a real picture.
"""

from __future__ import annotations

import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from scanner.evidence_lines import read_hosts
from scanner.knowledge import Knowledge
from scanner.policy.packs import load_pack
from scanner.report.build import Audit, Run, build_report
from scanner.report.html import write_html
from tests.chromium import FLAGS as BASE_FLAGS
from tests.chromium import chromium_path, png_size
from tests.report_fixtures import PACK, write_hostile

SAMPLES = Path(__file__).resolve().parent.parent / "scanner" / "samples" / "hosts.jsonl"
FLAGS = [*BASE_FLAGS, "--window-size=1200,3000"]


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium_path(), *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="module")
def report_html(shipped_engine, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("html")
    (d / "pack.yaml").write_text(PACK)
    pack = load_pack(d / "pack.yaml", shipped_engine.ruleset.makers)
    hostile = write_hostile(d / "hostile.jsonl")
    errors: list[str] = []
    hosts = []
    for path in (SAMPLES, hostile):
        with path.open() as fh:
            hosts.extend(read_hosts(fh, path.name, errors))
    report = build_report(
        hosts, Knowledge(shipped_engine, [pack]), Audit(site="Test Council <Depot>"), Run([], errors=errors)
    )
    out = d / "report.html"
    write_html(report, out)
    return out


def test_rendered_dom_shows_summary_flagged_devices_and_evidence(report_html: Path) -> None:
    proc = chromium("--dump-dom", report_html.as_uri())
    dom = proc.stdout
    assert proc.returncode == 0 and "</html>" in dom, proc.stderr[-2000:]
    assert "<title>camscan report: Test Council &lt;Depot&gt;</title>" in dom  # no script changed the title
    assert "pwned" not in dom.split("<body", 1)[0]
    summary = dom.split('id="summary"', 1)[1].split('id="flagged"', 1)[0]
    assert "devices" in summary and "flagged (break a regime rule)" in summary
    assert ">Hikvision<" in summary and ">Dahua<" in summary
    flagged = dom.split('id="flagged"', 1)[1].split('id="risks"', 1)[0]
    assert "10.77.0.11: Hikvision DS-2CD2143G2-I" in flagged
    assert "10.77.0.22: Dahua (sold as Amcrest)" in flagged
    assert (
        "Equipment produced by a covered entity" in flagged and "https://www.acquisition.gov/far/52.204-25" in flagged
    )
    assert "http.server/hikvision-app-webs (http.server: App-webs/)" in flagged  # the evidence behind the finding
    assert "&lt;script&gt;document.title=" in dom  # the hostile title, shown as text
    elements = _Elements()
    elements.feed(dom)
    assert not [t for t, _ in elements.tags if t in ("script", "img", "iframe", "b")]
    assert not [a for _, attrs in elements.tags for a, _ in attrs if a.lower().startswith("on")]


def test_screenshot_is_a_real_page(report_html: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    proc = chromium(f"--screenshot={shot}", report_html.as_uri())
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    data = shot.read_bytes()
    assert png_size(data) == (1200, 3000)
    assert len(data) > 50_000  # text and tables, not a blank page (a blank 1200x3000 PNG is a few kB)
