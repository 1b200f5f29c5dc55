"""Shared test data for the report tests: hostile hosts and a small regime pack."""

from __future__ import annotations

import json
from pathlib import Path

SCRIPT = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
FORMULAS = [
    "=cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    '+HYPERLINK("http://evil.example","x")',
    "\t=1+1",
    "\r=1+1",
]
BIG = "A" * 200_000  # a 200 kB banner


def hostile_hosts() -> list[dict[str, object]]:
    return [
        {
            "id": "hostile-1",
            "ip": "10.77.0.66",
            "mac": "44:19:b6:66:66:66",
            "evidence": [
                {"key": "http.server", "value": "App-webs/"},
                {"key": "http.title", "value": SCRIPT},
                {"key": "onvif.manufacturer", "value": FORMULAS[0]},
                {"key": "onvif.model", "value": FORMULAS[1]},
                {"key": "upnp.friendly_name", "value": FORMULAS[2]},
                {"key": "hostname", "value": FORMULAS[3]},
                {"key": "onvif.firmware", "value": FORMULAS[4]},
                {"key": "http.body", "value": '<html><body onload="alert(1)">' + BIG + "</body></html>"},
                {"key": "telnet.banner", "value": BIG},
            ],
        },
        {
            "id": "<b onmouseover=alert(1)>bold</b>",
            "ip": "10.77.0.67",
            "evidence": [
                {"key": "http.server", "value": "\u202eevil\u0000nul"},
                {"key": "hostname", "value": FORMULAS[5]},
            ],
        },
    ]


def write_hostile(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for h in hostile_hosts():
            fh.write(json.dumps(h) + "\n")
        fh.write("{broken json\n")
        fh.write(
            json.dumps({"id": "half", "evidence": [{"key": "http.server", "value": "App-webs/"}, {"key": 5}, "x"]})
            + "\n"
        )
    return path


PACK = """
pack:
  id: test-regime
  kind: regime
  version: "1"
  as_of: "2026-11-27"
  title: "Test regime"
  disclaimer: "Informational; not legal advice."
  citations:
    - {id: far, title: "FAR 52.204-25", url: "https://www.acquisition.gov/far/52.204-25", tag: OFFICIAL}
rules:
  - id: covered-maker
    title: "Equipment produced by a covered entity"
    severity: critical
    tier: direct
    status: law
    citations: [far]
    remediation: "Remove and replace."
    when: {manufacturer: [Hikvision, Dahua]}
  - id: sdk-port
    title: "Vendor SDK port exposed"
    severity: high
    tier: direct
    status: guidance
    citations: [far]
    remediation: "Close the port."
    when: {evidence: [{key: port.open, value: '^(8000|37777)/tcp$'}]}
examples:
  - {name: hikvision, device: {manufacturer: Hikvision}, expect: [covered-maker]}
  - {name: axis, device: {manufacturer: Axis, evidence: [{key: port.open, value: 80/tcp}]}, expect: []}
  - name: sdk
    device: {manufacturer: Dahua, evidence: [{key: port.open, value: 37777/tcp}]}
    expect: [covered-maker, sdk-port]
"""
