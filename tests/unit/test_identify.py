"""`camscan identify`: the JSON Lines contract of docs/evidence.md, bad lines included, through the real CLI."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.identify import MAX_LINE, identify_stream, read_lines

FIELDS = ["id", "manufacturer", "brand", "model", "firmware", "device_type", "confidence", "matched"]


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanner", "identify", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def host(hid: object, *pairs: tuple[str, str]) -> str:
    return json.dumps({"id": hid, "evidence": [{"key": k, "value": v} for k, v in pairs]})


def test_contract_fields_in_order_and_one_line_per_host() -> None:
    lines = [
        host("h1", ("http.server", "App-webs/"), ("mac", "44:19:b6:00:00:01")),
        host("h2", ("http.server", "Apache/2.4.57 (Debian)")),
        host(3),
    ]
    proc = run_cli(stdin="\n".join(lines) + "\n")
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [o["id"] for o in out] == ["h1", "h2", 3]
    for o in out:
        assert list(o) == FIELDS
    assert out[0]["manufacturer"] == "Hikvision" and out[0]["device_type"] == "camera"
    assert 0.9 < out[0]["confidence"] <= 1
    assert any(m.startswith("mac/") for m in out[0]["matched"])
    assert out[2]["manufacturer"] is None and out[2]["matched"] == []


def test_bad_lines_get_their_own_error_line_and_the_batch_goes_on(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        "\n".join(
            [
                "{not json",
                json.dumps({"evidence": []}),
                json.dumps({"id": "no-ev"}),
                json.dumps({"id": "bad-item", "evidence": [{"key": "http.server"}]}),
                json.dumps({"id": "bad-type", "evidence": [{"key": "http.server", "value": 7}]}),
                json.dumps([1, 2]),
                "",
                host("ok", ("http.server", "App-webs/")),
            ]
        )
        + "\n"
    )
    out_file = tmp_path / "out.jsonl"
    proc = run_cli(str(src), "-o", str(out_file))
    assert proc.returncode == 0
    out = [json.loads(x) for x in out_file.read_text().splitlines()]
    assert len(out) == 7  # the blank line is not a host
    assert [o.get("id") for o in out] == [None, None, "no-ev", "bad-item", "bad-type", None, "ok"]
    assert all("error" in o for o in out[:6])
    assert "not valid JSON" in out[0]["error"] and "missing 'id'" in out[1]["error"]
    assert out[6]["manufacturer"] == "Hikvision"
    assert "6 lines with errors" in proc.stderr


def test_hostile_values_are_data_not_code(shipped_engine) -> None:  # type: ignore[no-untyped-def]
    payloads = [
        "<script>alert(1)</script>",
        "=cmd|' /C calc'!A0",
        "${jndi:ldap://x/a}",
        "__import__('os')",
        "\x00\x01\xff",
        "A" * 3_000_000,
        "(" * 10_000,
        "App-webs/" + "\u202e" * 100,
    ]
    lines = "\n".join(
        host(i, ("http.server", p), ("http.title", p), ("tls.subject", p)) for i, p in enumerate(payloads)
    )
    dst = io.StringIO()
    counts = identify_stream(shipped_engine, io.StringIO(lines + "\n"), dst)
    out = [json.loads(x) for x in dst.getvalue().splitlines()]
    assert counts.hosts == len(payloads) and counts.errors == 0
    assert [o["id"] for o in out] == list(range(len(payloads)))


def test_over_long_line_is_refused_without_being_held() -> None:
    data = "x" * 100 + "\n" + "y" * 50 + "\n"
    assert [x if x is None else len(x) for x in read_lines(io.StringIO(data), limit=64)] == [None, 51]
    assert MAX_LINE >= 1024 * 1024


def test_files_are_read_in_order(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(host("a1") + "\n")
    b.write_text(host("b1") + "\n" + host("b2") + "\n")
    proc = run_cli(str(a), "-", str(b), stdin=host("stdin") + "\n")
    assert [json.loads(x)["id"] for x in proc.stdout.splitlines()] == ["a1", "stdin", "b1", "b2"]


def test_missing_input_file_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_cli(str(tmp_path / "nope.jsonl"))
    assert proc.returncode == 2 and "cannot read" in proc.stderr


@pytest.mark.parametrize("mac", ["44-19-B6-00-00-01", "4419.b600.0001", "4419B6000001"])
def test_mac_spellings_are_normalised(shipped_engine, mac: str) -> None:  # type: ignore[no-untyped-def]
    assert shipped_engine.identify([("mac", mac)]).manufacturer == "Hikvision"


def test_terminal_output_never_carries_escape_sequences() -> None:
    from scanner.cli.render import cell, safe

    hostile = "DS-2CD\x1b[2J\x1b]0;pwned\x07\u202eevil\r"
    assert safe(hostile) == "DS-2CD\\x1b[2J\\x1b]0;pwned\\x07\\u202eevil\\r"
    assert "\x1b" not in cell(hostile).plain
    assert safe("Hikvision DS-2CD2143G2-I") == "Hikvision DS-2CD2143G2-I"


def test_worker_processes_give_the_same_lines_in_the_same_order(tmp_path: Path) -> None:
    from scanner import identify as ident

    lines = [
        host(f"h{i}", ("http.server", "App-webs/" if i % 3 else "Apache"), ("mac", f"44:19:b6:00:00:{i % 256:02x}"))
        for i in range(5000)
    ]
    lines[17] = "{broken"
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    one = run_cli(str(src), "--jobs", "1")
    two = run_cli(str(src), "--jobs", "2")
    assert one.returncode == two.returncode == 0
    assert one.stdout == two.stdout and len(one.stdout.splitlines()) == 5000
    assert "1 lines with errors" in two.stderr
    assert ident.BATCH < 5000  # the parallel path really ran several batches
