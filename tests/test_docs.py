"""Every reference to the design documents resolves inside the repository: a `docs/x.md` named in code, rule
files, packs or READMEs exists, and a `docs/compliance.md section N` names a heading that exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHERE = ("scanner", "fingerprints", "policies", "reports", "tests", "benchmarks", "docs", "README.md")
DOC_REF = re.compile(r"docs/([a-z0-9-]+\.md)(?:,? sections? ([0-9][0-9.]*(?:(?:,| and) [0-9][0-9.]*)*))?")
SECTION = re.compile(r"^#{2,3} ([0-9][0-9.]*)[ .]", re.M)


def text_files() -> list[Path]:
    out: list[Path] = []
    for name in WHERE:
        path = ROOT / name
        if path.is_file():
            out.append(path)
        else:
            out += [p for p in path.rglob("*") if p.suffix in {".py", ".md", ".yaml", ".json", ".j2", ".txt"}]
    return [p for p in out if p != Path(__file__).resolve()]


def test_every_docs_reference_resolves() -> None:
    sections = {n.rstrip(".") for n in SECTION.findall((ROOT / "docs" / "compliance.md").read_text())}
    bad: list[str] = []
    seen = 0
    for path in text_files():
        for m in DOC_REF.finditer(path.read_text(encoding="utf-8", errors="replace")):
            seen += 1
            doc, cited = m.group(1), m.group(2)
            if not (ROOT / "docs" / doc).is_file():
                bad.append(f"{path.relative_to(ROOT)}: docs/{doc} does not exist")
            if doc == "compliance.md" and cited:
                for n in re.split(r",| and ", cited):
                    if n.strip().rstrip(".") not in sections:
                        bad.append(f"{path.relative_to(ROOT)}: docs/compliance.md has no section {n.strip()}")
    assert seen > 10, "the pattern found almost no reference: is it still right?"
    assert not bad, "\n".join(bad)


def test_no_reference_points_outside_the_repository() -> None:
    outside = re.compile(r"(?:\.\./)?shared/[A-Z-]+\.md")
    bad = [
        str(p.relative_to(ROOT))
        for p in text_files()
        if p.suffix != ".md" or p.parent.name != "docs"  # docs/ may say where it came from
        if outside.search(p.read_text(encoding="utf-8", errors="replace"))
    ]
    assert not bad, bad
