#!/usr/bin/env python3
"""Speed and memory of `camscan pcap` against tshark extracting the same protocols, on one generated capture.

Generates (in a temporary directory, never committed) a capture of N packets (default 1,000,000): mostly
ordinary traffic (TLS bulk downloads from internet servers and their ACKs, DNS, SMB between workstations,
workstations' mDNS queries and ARP), with the real lab capture tests/fixtures/pcaps/lab_scan.pcap (cameras
announcing themselves and answering a scan) spliced in every N/10 packets. Then runs, each as a subprocess:

    camscan pcap FILE --json OUT
    tshark -r FILE -Y 'arp || dhcp || mdns || udp.port==3702 || ssdp || http || rtsp || udp.port==37020
                       || udp.port==37810' -T fields -e ip.src -e arp.src.proto_ipv4 -e eth.src ...

and prints packets per second and peak memory (max RSS) of each, and whether both found the same devices
(the private source addresses of the packets tshark's filter keeps, against camscan's devices). With
--sizes, camscan alone also runs on smaller captures, to show that its memory does not grow with the file.
No assertion: figures only.

    python benchmarks/bench_pcap.py [--packets 1000000] [--keep DIR] [--sizes]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "tests" / "fixtures" / "pcaps" / "lab_scan.pcap"
TSHARK_FILTER = "arp || dhcp || mdns || udp.port==3702 || ssdp || http || rtsp || udp.port==37020 || udp.port==37810"
MEASURE = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], 'wb'), stderr=subprocess.DEVNULL)\n"
    "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def mac(i: int, oui: bytes = b"\x02\x00\x00") -> bytes:
    return oui + i.to_bytes(3, "big")


def ip(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0, src, dst) + payload


def tcp(sport: int, dport: int, seq: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 1, 0x50, flags, 65535, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def eth(src: bytes, dst: bytes, payload: bytes, ethertype: int = 0x0800) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def lab_records() -> list[bytes]:
    """The lab capture's packets (Ethernet frames), in order."""
    data = LAB.read_bytes()
    out, pos = [], 24
    while pos + 16 <= len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        out.append(data[pos + 16 : pos + 16 + incl])
        pos += 16 + incl
    return out


def generate(path: Path, packets: int, seed: int = 11) -> tuple[int, int]:
    """Write the capture; returns (packets written, camera packets among them)."""
    rng = random.Random(seed)
    lab = lab_records()
    router = mac(1, b"\x00\x00\x5e")
    stations = [(mac(100 + i), ip(f"10.77.0.{100 + i}")) for i in range(60)]
    firsts = [23, 52, 104, 142, 151]
    servers = [ip(f"{rng.choice(firsts)}.{rng.randrange(256)}.{rng.randrange(256)}.{i}") for i in range(40)]
    bulk_payload = b"\x17\x03\x03\x05\xb4" + bytes(rng.randrange(256) for _ in range(1455))
    dns_query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01"
    mdns_query = b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x0b_googlecast\x04_tcp\x05local\x00\x00\x0c\x00\x01"
    written = cams = 0
    every = max(packets // 10, len(lab) + 1)
    t = 1_700_000_000.0
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        buf: list[bytes] = []

        def put(frame: bytes) -> None:
            nonlocal written, t
            t += 0.00002
            sec = int(t)
            buf.append(struct.pack("<IIII", sec, int((t - sec) * 1e6), len(frame), len(frame)) + frame)
            written += 1
            if len(buf) >= 4096:
                fh.write(b"".join(buf))
                buf.clear()

        for smac, sip in stations:  # every workstation is on the LAN and says so by ARP
            reply = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + smac + sip + router + ip("10.77.0.1")
            put(eth(smac, b"\xff" * 6, reply, 0x0806))
        seq = 1
        while written < packets:
            if written % every == every // 2:
                for frame in lab:
                    put(frame)
                    cams += 1
                continue
            r = rng.random()
            smac, sip = stations[rng.randrange(len(stations))]
            server = servers[rng.randrange(len(servers))]
            if r < 0.40:  # a TLS download segment from an internet server
                seq += 1460
                put(eth(router, smac, ipv4(server, sip, 6, tcp(443, 50000 + (seq & 0xFFF), seq, 0x10, bulk_payload))))
            elif r < 0.85:  # the workstation's ACK
                put(eth(smac, router, ipv4(sip, server, 6, tcp(50000 + (seq & 0xFFF), 443, 1, 0x10))))
            elif r < 0.95:
                put(eth(smac, router, ipv4(sip, ip("8.8.8.8"), 17, udp(53000 + (seq & 0xFF), 53, dns_query))))
            elif r < 0.99:  # SMB between workstations
                other_mac, other_ip = stations[rng.randrange(len(stations))]
                put(eth(smac, other_mac, ipv4(sip, other_ip, 6, tcp(445, 49000, seq, 0x18, bulk_payload[:240]))))
            else:
                query = ipv4(sip, ip("224.0.0.251"), 17, udp(5353, 5353, mdns_query))
                put(eth(smac, b"\x01\x00\x5e\x00\x00\xfb", query))
        fh.write(b"".join(buf))
    return written, cams


def measure(argv: list[str], out: Path) -> tuple[int, float, int]:
    """(exit code, seconds, peak RSS in kB) of one command, its stdout to `out`."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(out), *argv], capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    code, rss = proc.stdout.split()
    return int(code), elapsed, int(rss)


def lan(address: str) -> bool:
    try:
        a = ipaddress.IPv4Address(address)
    except ValueError:
        return False
    return a.is_private and not a.is_multicast and address != "0.0.0.0"


def camscan_devices(report: Path) -> tuple[set[str], dict[str, str]]:
    doc = json.loads(report.read_text())
    devices = {d["ip"] for d in doc["devices"] if d.get("ip")}
    makers = {}
    for d in doc["devices"]:
        if d.get("ip") and d.get("manufacturer"):
            flagged = any(f["kind"] == "regime" for f in d["findings"])
            makers[d["ip"]] = d["manufacturer"] + (" FLAGGED" if flagged else "")
    return devices, makers


def tshark_devices(fields: Path) -> set[str]:
    out: set[str] = set()
    with fields.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            ip_src, arp_src, *_ = [*line.rstrip("\n").split("\t"), "", ""]
            for a in (ip_src, arp_src):
                if a and lan(a):
                    out.add(a)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="write the capture and outputs here instead of a temp dir")
    ap.add_argument("--sizes", action="store_true", help="also run camscan on 1/10 and 1/3 of the packets")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="camscan-bench-pcap-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        cap = work / "bench.pcap"
        t0 = time.perf_counter()
        n, cams = generate(cap, args.packets)
        size = cap.stat().st_size
        print(f"capture: {n} packets ({cams} from the lab's cameras), {size / 1e6:.0f} MB, generated in "
              f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
        camscan = [sys.executable, "-m", "scanner", "pcap", str(cap), "--json", str(work / "camscan.json")]
        code, secs, rss = measure(camscan, work / "camscan.out")
        print(f"camscan pcap: {secs:.1f} s, {n / secs:,.0f} packets/s, {size / secs / 1e6:.0f} MB/s, peak memory "
              f"{rss / 1024:.0f} MB (exit {code})")  # fmt: skip
        ours, makers = camscan_devices(work / "camscan.json") if code == 0 else (set(), {})
        if args.sizes:
            for frac in (10, 3):
                small = work / f"bench_{frac}.pcap"
                generate(small, n // frac)
                _, s2, r2 = measure([*camscan[:4], str(small), "--json", str(work / "s.json")], work / "s.out")
                print(f"  camscan on {n // frac} packets ({small.stat().st_size / 1e6:.0f} MB): {s2:.1f} s, peak "
                      f"memory {r2 / 1024:.0f} MB")  # fmt: skip
                small.unlink()
        tshark = shutil.which("tshark")
        if not tshark:
            print("tshark: not installed (apt-get install -y tshark), no comparison")
            return
        argv = [tshark, "-r", str(cap), "-Y", TSHARK_FILTER, "-T", "fields", "-e", "ip.src", "-e", "arp.src.proto_ipv4"]
        argv += ["-e", "eth.src", "-e", "http.server", "-e", "rtsp.response"]
        code_t, secs_t, rss_t = measure(argv, work / "tshark.tsv")
        print(f"tshark -Y ...: {secs_t:.1f} s, {n / secs_t:,.0f} packets/s, peak memory {rss_t / 1024:.0f} MB "
              f"(exit {code_t})")  # fmt: skip
        theirs = tshark_devices(work / "tshark.tsv")
        print(f"speed: camscan is {secs_t / secs:.1f}x tshark's packet rate; memory {rss / max(rss_t, 1):.2f}x")
        same = ours == theirs
        print(f"devices (private source addresses): camscan {len(ours)}, tshark {len(theirs)}: "
              f"{'the same' if same else 'DIFFERENT'}")  # fmt: skip
        if not same:
            print(f"  only camscan: {sorted(ours - theirs)}\n  only tshark: {sorted(theirs - ours)}")
        named = sorted(makers.items(), key=lambda kv: ipaddress.IPv4Address(kv[0]))
        print("camscan named: " + ", ".join(f"{a} {m}" for a, m in named))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
