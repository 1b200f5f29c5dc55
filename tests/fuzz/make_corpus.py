"""Build the seed corpus of every fuzz target (tests/fuzz/corpus/<target>/) from what the project already has:

- the packet captures of tests/fixtures/pcaps/ (the lab personas' real replies on a virtual wire, the synthetic
  and the broken ones): each capture is read through the dissector with every parser wrapped, so each target
  gets the very bytes its parser is handed in a real audit (SADP, DHIP, WS-Discovery, SSDP, mDNS, ARP, DHCP,
  HTTP and RTSP streams, TLS handshakes and certificates, banners, UPnP descriptions); the captures themselves
  (cut to whole records) seed the capture reader, and runs of their frames seed the dissector;
- the real-looking and the hostile answers of tests/unit/test_discovery_parsers.py, test_probe_parsers.py and
  test_udp_parsers.py;
- certificates made for the lab personas (scanner/lab/certs.py), the shipped rule files and policy packs, the
  held-out Evidence lines of tests/fixtures/eval/.

Run from the repository root: `.venv/bin/python -m tests.fuzz.make_corpus`. Files are named by origin and
content digest; the script only adds files, so seeds added by hand (the nmap XML, see corpus/README.md) stay.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import struct
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.fuzz.contract import CORPUS, ROOT
from tests.fuzz.fuzz_frames import build as build_frames

PCAPS = ROOT / "tests" / "fixtures" / "pcaps"
MAX_SEED = 60 * 1024  # under every target's max_len (tests/fuzz/run.py)
PER_ORIGIN = 25  # seeds taken from one capture for one target
PCAP_PIECE = 16 * 1024  # the capture reader's seeds: small files of whole records keep the fuzzer fast

seeds: dict[str, dict[str, bytes]] = defaultdict(dict)  # target -> name -> bytes


def add(target: str, origin: str, data: bytes) -> None:
    if not data or len(data) > MAX_SEED:
        return
    digest = hashlib.sha256(data).hexdigest()[:12]
    if any(hashlib.sha256(v).hexdigest()[:12] == digest for v in seeds[target].values()):
        return
    if sum(name.startswith(origin + "-") for name in seeds[target]) >= PER_ORIGIN:
        return
    seeds[target][f"{origin}-{digest}"] = data


# -- from the captures: what each parser is handed -------------------------------------------------------------


def _record(target: str, origin: Callable[[], str], fn: Callable[..., Any], first_arg: int = 0) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        data = args[first_arg]
        if isinstance(data, (bytes, bytearray)):
            add(target, origin(), bytes(data))
        return fn(*args, **kwargs)

    return wrapper


def from_captures() -> None:
    from scanner.discovery import dhip, mdns, sadp, sip, snmp, ssdp, wsd
    from scanner.passive import Analyzer, CaptureError, dissect, flows, read_capture
    from scanner.probes import banner, http, tls

    current = {"name": ""}

    def origin() -> str:
        return "pcap_" + current["name"]

    patches: list[tuple[Any, str, str]] = [
        (wsd, "parse_probe_matches", "wsd"),
        (sadp, "parse_probe_match", "sadp_dhip"),
        (dhip, "parse_reply", "sadp_dhip"),
        (ssdp, "parse_response", "ssdp_upnp"),
        (ssdp, "parse_description", "ssdp_upnp"),
        (mdns, "parse_mdns_answer", "mdns"),
        (sip, "parse_message", "sip_snmp"),
        (snmp, "parse_message", "sip_snmp"),
        (dissect, "parse_arp", "arp_dhcp"),
        (dissect, "parse_dhcp", "arp_dhcp"),
        (http, "split_responses", "http_rtsp"),
        (tls, "leaf_certificate", "tls"),
        (tls, "parse_certificate", "tls"),
        (banner, "parse_banner", "banner_onvif"),
    ]
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in patches]
    try:
        for mod, name, target in patches:
            setattr(mod, name, _record(target, origin, getattr(mod, name)))
        for path in sorted(PCAPS.glob("*.pcap*")):
            current["name"] = path.stem
            analyzer = Analyzer()
            frames: list[tuple[int, bytes]] = []

            def sink(
                d: bytes, p: int, n: int, link: int, ts: float, a: Analyzer = analyzer, frames: list[Any] = frames
            ) -> None:
                frames.append((link, bytes(d[p : p + n])))
                a.feed(d, p, n, link, ts)

            with contextlib.suppress(CaptureError):
                read_capture(path, sink)
            analyzer.hosts()
            _frame_seeds(path.stem, frames)
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)
    del flows  # imported so that its module-level references are the wrapped ones during the reads


def _frame_seeds(stem: str, frames: list[tuple[int, bytes]]) -> None:
    """Runs of up to 16 consecutive frames of one link type, as fuzz_frames reads them."""
    run: list[bytes] = []
    link = None
    for frame_link, frame in [*frames, (-1, b"")]:
        size = sum(len(f) + 2 for f in run)
        if run and (frame_link != link or len(run) >= 16 or size + len(frame) > 16 * 1024):
            if link is not None and link >= 0:
                from tests.fuzz.fuzz_frames import LINKS

                if link in LINKS:
                    add("frames", f"pcap_{stem}", build_frames(link, 0, run))
            run = []
        link = frame_link
        if frame and len(frame) < 16 * 1024:
            run.append(frame)


def _pcap_pieces(path: Path) -> list[bytes]:
    """A classic pcap cut into files of whole records, each under PCAP_PIECE (the file header repeated)."""
    data = path.read_bytes()
    magic = data[:4]
    endian = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}
    if magic not in endian or len(data) <= PCAP_PIECE:
        return [data]
    header, pos, pieces, current = data[:24], 24, [], bytearray()
    while pos + 16 <= len(data):
        incl = struct.unpack_from(endian[magic] + "I", data, pos + 8)[0]
        record = data[pos : pos + 16 + incl]
        if current and len(current) + len(record) + 24 > PCAP_PIECE:
            pieces.append(header + bytes(current))
            current = bytearray()
        current += record
        pos += 16 + incl
    if current:
        pieces.append(header + bytes(current))
    return pieces


def captures_themselves() -> None:
    for path in sorted(PCAPS.glob("*.pcap*")):
        for piece in _pcap_pieces(path)[:12]:
            add("pcap", f"file_{path.stem}", piece)


# -- from the unit tests ------------------------------------------------------------------------------------------


def _module(name: str) -> ModuleType:
    path = ROOT / "tests" / "unit" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_corpus_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TEST_CONSTANTS = {
    "test_discovery_parsers": {
        "HIKVISION_PROBE_MATCH": "wsd",
        "AXIS_PROBE_MATCH": "wsd",
        "HELLO": "wsd",
        "BYE": "wsd",
        "ENTITY_BOMB": ("wsd", "ssdp_upnp", "sadp_dhip", "banner_onvif", "nmap_xml"),
        "EXTERNAL_ENTITY": ("wsd", "ssdp_upnp", "sadp_dhip", "nmap_xml"),
        "HOSTILE_WSD": "wsd",
        "AXIS_SSDP": "ssdp_upnp",
        "NOTIFY_ALIVE": "ssdp_upnp",
        "HOSTILE_SSDP": "ssdp_upnp",
        "AXIS_DESCRIPTION": "ssdp_upnp",
        "HOSTILE_DESCRIPTIONS": "ssdp_upnp",
        "HOSTILE_MDNS": "mdns",
    },
    "test_probe_parsers": {
        "HIKVISION_ROOT": "http_rtsp",
        "DAHUA_401": "http_rtsp",
        "AXIS_REDIRECT": "http_rtsp",
        "HIK_OPTIONS": "http_rtsp",
        "HIK_DESCRIBE_401": "http_rtsp",
        "LIVE555_DESCRIBE": "http_rtsp",
        "GSDT": "banner_onvif",
        "NOT_AUTHORIZED": "banner_onvif",
        "BOMB": "banner_onvif",
        "TELNET_BUSYBOX": "banner_onvif",
    },
    "test_udp_parsers": {"SADP_REPLY": "sadp_dhip"},
}


def from_tests() -> None:
    sys.path.insert(0, str(ROOT / "tests" / "unit"))
    for module_name, names in TEST_CONSTANTS.items():
        module = _module(module_name)
        for name, targets in names.items():
            value = getattr(module, name)
            items = value.items() if isinstance(value, dict) else [("", value)]
            for case, data in items:
                for target in (targets,) if isinstance(targets, str) else targets:
                    add(target, f"test_{name}{'_' + case if case else ''}".replace("/", "_"), data)


# -- made here ------------------------------------------------------------------------------------------------------


def certificates() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from scanner.lab.certs import make_certificate
    from scanner.lab.persona import load_personas

    with tempfile.TemporaryDirectory() as tmp:
        for persona in load_personas():
            service = persona.services.https
            spec = service.certificate if service is not None else None
            if spec is None:
                continue
            d = Path(tmp) / persona.id
            d.mkdir()
            cert_path, _ = make_certificate(spec, persona.id, d)
            der = x509.load_pem_x509_certificate(Path(cert_path).read_bytes()).public_bytes(Encoding.DER)
            add("tls", f"lab_{persona.id}", der)


def udp_builders() -> None:
    from scanner.discovery import dhip, sadp, ssdp, wsd

    add("sadp_dhip", "probe_sadp", sadp.build_probe("00000000-0000-0000-0000-000000000000"))
    add("sadp_dhip", "probe_dhip", dhip.build_probe())
    add("wsd", "probe_wsd", wsd.build_probe("dn:NetworkVideoTransmitter", "urn:uuid:0"))
    add("ssdp_upnp", "probe_msearch", ssdp.build_msearch("ssdp:all"))
    add("arp_dhcp", "proc_net_arp", PROC_NET_ARP)


PROC_NET_ARP = (
    b"IP address       HW type     Flags       HW address            Mask     Device\n"
    b"10.77.0.11       0x1         0x2         58:50:ed:3a:10:11     *        lab0\n"
    b"10.77.0.12       0x1         0x0         00:00:00:00:00:00     *        lab0\n"
    b"10.77.0.13       0x1         0x2         ac:cc:8e:12:34:31     *        eth1\n"
)


def knowledge_files() -> None:
    from scanner.fingerprint.rules import rule_paths

    for path in rule_paths(ROOT / "fingerprints"):
        add("rules_yaml", f"shipped_{path.stem}", path.read_bytes())
    for path in sorted((ROOT / "policies").glob("*.yaml")):
        add("policy_yaml", f"shipped_{path.stem}", path.read_bytes())
    lines = (ROOT / "tests" / "fixtures" / "eval" / "heldout.jsonl").read_bytes().splitlines(keepends=True)
    for i in range(0, len(lines), 8):
        add("evidence_lines", f"heldout_{i:04d}", b"".join(lines[i : i + 8]))


def main() -> None:
    from_captures()
    captures_themselves()
    from_tests()
    certificates()
    udp_builders()
    knowledge_files()
    written = 0
    for target, files in sorted(seeds.items()):
        d = CORPUS / target
        d.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            path = d / name
            if not path.exists():
                path.write_bytes(data)
                written += 1
        print(f"{target:16} {len(files):4} seeds")
    print(f"{written} new files in {CORPUS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
