#!/usr/bin/env python3
"""Speed and memory of `camscan scan`, against simulated devices in network namespaces (root needed).

Three parts, figures only (no assertion):

1. lab:   the bundled persona lab (`scanner.lab.control.up("netns")`), a full default scan run in its scanner
          namespace as a user would (`camscan scan 10.77.0.0/24 --interface lab0 --json F`): wall time, the
          phase breakdown the scan prints, peak memory, devices found, cameras whose maker is named (checked
          against each persona's `expect` block).
2. nmap:  `nmap -sV -n -p <camera ports> -oX - <the lab's addresses>` from the same namespace, over the same
          hosts (the persona addresses: nmap's best case, it is not asked to sweep the /24) and camscan's own
          port set (scanner.camera_ports.PORTS). Its XML is parsed with defusedxml. A camera counts
          as named by nmap when the expected maker, or one of the maker's own names in MAKER_NAMES, appears as
          a whole word (case-insensitive) in a service's product, version, extrainfo, devicetype, hostname or
          CPE string. A label brand alone (EZVIZ, LTS, Amcrest) does not count as the maker; it is shown
          apart, as is the maker that nmap's MAC-prefix table gives (not a -sV fingerprint).
3. scale: lightweight hosts, built here: one namespace holds every address (`ip addr add` many times, on
          macvlans of one veth), one asyncio responder process (this file, `--responder`) answers on all of
          them; the scanner namespace sits on the same bridge at 10.78.0.2. Of every ten live hosts, four are
          camera-like (HTTP on 80 with a Hikvision Server header, RTSP on 554), two accept on 80 and close at
          once, three listen on nothing (RST) and one is silent (a `from ADDR blackhole` rule: it answers ARP
          and drops every reply, like a firewalled host). Scans of 10.78.0.0/23 with 500, 250 and 100 live
          hosts (how time grows with hosts), and of a /24 and a /22 with 100 (how it grows with address
          space). Each host is a macvlan with its own (locally administered) MAC on the hosts' veth, so each is
          its own device in the report.

Namespaces are named `bscan<pid>-*` (not `camscan-*`, which `lab up` sweeps as stale labs) and deleted by
name, processes are killed by PID, in finally blocks: also on Ctrl-C or SIGTERM.

    sudo .venv/bin/python benchmarks/bench_scan.py [--parts lab,nmap,scale] [--hosts 500] [--lab-runs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.lab.persona import Persona

LAB_TARGET = "10.77.0.0/24"
CAMERA_TYPES = {"camera", "recorder", "encoder", "intercom", "access_control"}
# The maker's own names only (former names, the parent company, product lines sold under the maker's name).
MAKER_NAMES: dict[str, tuple[str, ...]] = {
    "Hikvision": ("hikvision", "hik vision"),
    "Dahua": ("dahua",),
    "Axis": ("axis",),
    "Hanwha": ("hanwha", "samsung techwin", "wisenet"),
    "Bosch": ("bosch",),
    "Uniview": ("uniview", "zhejiang uniview"),
    "Reolink": ("reolink",),
    "Ubiquiti": ("ubiquiti", "ubnt", "unifi"),
}
SCALE_NET = "10.78.0.0"
SCALE_SCANNER_IP = "10.78.0.2"
SCALE_SCANNER_MAC = "02:ca:35:be:00:02"
SCALE_MAC_PREFIX = "02:ca:35:bf"  # locally administered: the report names no maker from these MACs
SERVER_HEADERS = ("App-webs/", "DNVRS-Webs")  # Hikvision IPC and NVR banners (fingerprints/http_server.yaml)


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the finally blocks run, as on Ctrl-C


# ---------------------------------------------------------------------------------------------- processes


@dataclass
class Run:
    argv: list[str]
    seconds: float
    peak_mib: float
    returncode: int
    stdout: str
    stderr: str


def run_measured(argv: list[str], timeout: float = 600.0) -> Run:
    """Run `argv`; wall time, and peak RSS of that process alone (os.wait4 rusage; `ip netns exec` execs,
    so the PID is the program's own). Its own session, killed by PID on timeout or Ctrl-C."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        reaped = False
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid == proc.pid:
                    reaped = True
                    break
                if time.perf_counter() - t0 > timeout:
                    raise TimeoutError(f"{argv[0]}... did not finish in {timeout:.0f} s")
                time.sleep(0.005)
            seconds = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            if not reaped:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(proc.pid, 0)
        out.seek(0)
        err.seek(0)
        return Run(argv, seconds, usage.ru_maxrss / 1024, proc.returncode, out.read(), err.read())


def camscan_argv(namespace: str, target: str, json_out: Path) -> list[str]:
    return [
        "ip",
        "netns",
        "exec",
        namespace,
        sys.executable,
        "-m",
        "scanner",
        "scan",
        target,
        "--interface",
        "lab0",
        "--json",
        str(json_out),
    ]


PHASE_LINE = re.compile(r"scan of (\d+) addresses: (.*?); (\d+) packets sent")


def parse_phases(stdout: str) -> tuple[dict[str, float], int | None]:
    """The scan's own line: `scan of N addresses: discovery X s, ports Y s, probes Z s; P packets sent`."""
    m = PHASE_LINE.search(" ".join(stdout.split()))
    if not m:
        return {}, None
    phases = {name: float(v) for name, v in re.findall(r"([a-z]+) ([0-9.]+) s", m.group(2))}
    return phases, int(m.group(3))


def fmt_phases(phases: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()) or "(no phase line in the output)"


# ---------------------------------------------------------------------------------------------- part 1: lab


@dataclass
class LabScore:
    found: int = 0
    cameras: int = 0
    named: int = 0
    not_cameras_as_cameras: int = 0
    misses: list[str] = field(default_factory=list)


def score_camscan(report: dict[str, Any], personas: list[Persona]) -> LabScore:
    by_ip: dict[str, dict[str, Any]] = {}
    for d in report.get("devices", []):
        for addr in [d.get("ip"), *d.get("other_ips", [])]:
            by_ip[str(addr)] = d
    s = LabScore()
    for p in personas:
        d = by_ip.get(p.ip)
        s.found += d is not None
        is_camera = p.expect.device_type in CAMERA_TYPES and p.expect.manufacturer
        if is_camera:
            s.cameras += 1
            if d is not None and d.get("manufacturer") == p.expect.manufacturer:
                s.named += 1
            else:
                s.misses.append(f"{p.id} (got {d.get('manufacturer') if d else 'not found'})")
        elif p.expect.device_type == "other" and d is not None and d.get("device_type") in CAMERA_TYPES:
            s.not_cameras_as_cameras += 1
    return s


def part_lab(tmp: Path, runs: int, want_nmap: bool) -> None:
    from scanner.lab import control
    from scanner.lab.persona import load_personas

    personas = load_personas()
    state_dir = tmp / "lab"
    print(f"\n== 1. persona lab: {len(personas)} personas, netns, `camscan scan {LAB_TARGET} --interface lab0` ==")
    t0 = time.perf_counter()
    try:
        state = control.up("netns", state_dir=state_dir)
        print(f"lab up in {time.perf_counter() - t0:.1f} s (namespace {state.scanner_namespace})")
        ns = str(state.scanner_namespace)
        camscan_seconds: list[float] = []
        score = LabScore()
        for i in range(runs):
            out = tmp / f"lab-{i}.json"
            r = run_measured(camscan_argv(ns, LAB_TARGET, out), timeout=300)
            if r.returncode != 0:
                print(f"camscan scan failed ({r.returncode}):\n{r.stderr[-2000:]}")
                return
            phases, packets = parse_phases(r.stdout)
            score = score_camscan(json.loads(out.read_text()), personas)
            camscan_seconds.append(r.seconds)
            print(
                f"run {i + 1}: wall {r.seconds:.2f} s (process start to exit, report written); "
                f"{fmt_phases(phases)}; {packets} packets; peak {r.peak_mib:.0f} MiB"
            )
        print(
            f"devices found: {score.found}/{len(personas)} personas; cameras named by maker: "
            f"{score.named}/{score.cameras}; non-cameras called cameras: {score.not_cameras_as_cameras}"
        )
        if score.misses:
            print("  camscan missed: " + "; ".join(score.misses))
        if want_nmap:
            part_nmap(ns, personas, min(camscan_seconds), score)
    finally:
        control.down(state_dir)
        print("lab down")


# ---------------------------------------------------------------------------------------------- part 2: nmap


def nmap_texts(xml: bytes) -> dict[str, tuple[list[str], str]]:
    """{address: (fingerprint strings of its open services, MAC vendor)} from nmap's XML."""
    from defusedxml import ElementTree

    root = ElementTree.fromstring(xml)
    out: dict[str, tuple[list[str], str]] = {}
    for host in root.iter("host"):
        addr = next((a.get("addr") for a in host.findall("address") if a.get("addrtype") == "ipv4"), None)
        if not addr:
            continue
        vendor = next((a.get("vendor") or "" for a in host.findall("address") if a.get("addrtype") == "mac"), "")
        texts: list[str] = []
        for port in host.iter("port"):
            state = port.find("state")
            svc = port.find("service")
            if state is None or state.get("state") != "open" or svc is None:
                continue
            texts += [svc.get(k) or "" for k in ("product", "version", "extrainfo", "devicetype", "hostname")]
            texts += [c.text or "" for c in svc.findall("cpe")]
        out[addr] = ([t for t in texts if t], vendor)
    return out


def names_maker(texts: list[str], maker: str) -> bool:
    names = MAKER_NAMES.get(maker, (maker.lower(),))
    blob = " ".join(texts).lower().replace("_", " ").replace(":", " ")
    return any(re.search(rf"\b{re.escape(n)}\b", blob) for n in names)


def part_nmap(namespace: str, personas: list[Persona], camscan_best: float, camscan: LabScore) -> None:
    from scanner.camera_ports import CAMERA_PORTS

    print(f"\n== 2. nmap -sV over the same {len(personas)} hosts and {len(CAMERA_PORTS)} camera ports ==")
    if shutil.which("nmap") is None:
        print("nmap is not installed (scripts/system-deps.sh installs it): comparison skipped")
        return
    version = subprocess.run(["nmap", "--version"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    ports = ",".join(map(str, CAMERA_PORTS))
    argv = ["ip", "netns", "exec", namespace, "nmap", "-sV", "-n", "-p", ports, "-oX", "-", *[p.ip for p in personas]]
    print(f"{version}: nmap -sV -n -p {ports} -oX - <{len(personas)} addresses>")
    r = run_measured(argv, timeout=1800)
    if r.returncode != 0:
        print(f"nmap failed ({r.returncode}): {r.stderr[-1000:]}")
        return
    texts = nmap_texts(r.stdout.encode())
    cameras = [p for p in personas if p.expect.device_type in CAMERA_TYPES and p.expect.manufacturer]
    named, label_only, by_mac, missed = 0, [], 0, []
    for p in cameras:
        strings, vendor = texts.get(p.ip, ([], ""))
        maker = p.expect.manufacturer or ""
        if names_maker(strings, maker):
            named += 1
        else:
            missed.append(p.id)
            if p.expect.brand and names_maker(strings, p.expect.brand):
                label_only.append(p.id)
        by_mac += names_maker([vendor], maker)
    print(
        f"nmap: wall {r.seconds:.2f} s, peak {r.peak_mib:.0f} MiB, {len(texts)} hosts up; cameras whose maker "
        f"its -sV fingerprints name: {named}/{len(cameras)}"
    )
    if missed:
        print(f"  nmap missed: {', '.join(missed)}" + (f" (label only: {', '.join(label_only)})" if label_only else ""))
    print(f"  (nmap's MAC-prefix vendor names the maker of {by_mac}/{len(cameras)}; not a service fingerprint)")
    print(
        f"camscan vs nmap -sV: {camscan_best:.2f} s vs {r.seconds:.2f} s = {r.seconds / camscan_best:.1f}x faster; "
        f"makers named {camscan.named}/{camscan.cameras} vs {named}/{len(cameras)}"
    )


# ---------------------------------------------------------------------------------------------- part 3: scale


def scale_addresses(prefix: int, live: int) -> list[str]:
    """`live` addresses spread evenly over 10.78.0.0/prefix, skipping .0.1 and the scanner's .0.2."""
    net = ipaddress.ip_network(f"{SCALE_NET}/{prefix}")
    usable = [str(a) for a in net.hosts() if str(a) not in ("10.78.0.1", SCALE_SCANNER_IP)]
    if live > len(usable):
        raise SystemExit(f"{live} hosts do not fit in a /{prefix}")
    step = len(usable) / live
    return [usable[int(i * step)] for i in range(live)]


def roles(addresses: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"camera": [], "closer": [], "plain": [], "silent": []}
    for i, a in enumerate(addresses):
        k = i % 10
        out["camera" if k < 4 else "closer" if k < 6 else "plain" if k < 9 else "silent"].append(a)
    return out


@contextlib.contextmanager
def scale_lab(tmp: Path, prefix: int, live: int) -> Iterator[tuple[str, dict[str, list[str]]]]:
    """Bridge, hosts and scanner namespaces plus the responder; everything removed on the way out."""
    from scanner.lab.control import ip_batch

    base = f"bscan{os.getpid()}"
    sw, hosts, scan = f"{base}-sw", f"{base}-hosts", f"{base}-scan"
    made: list[str] = []
    responder: subprocess.Popen[str] | None = None
    try:
        for ns in (sw, hosts, scan):
            subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
            made.append(ns)
        ip_batch(
            [
                "link set lo up",
                "link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
                "link set br0 up",
                f"link add h0 type veth peer name lab0 netns {hosts}",
                f"link add s0 type veth peer name lab0 netns {scan}",
                "link set h0 master br0",
                "link set s0 master br0",
                "link set h0 up",
                "link set s0 up",
            ],
            sw,
        )
        ip_batch(
            [
                "link set lo up",
                f"link set lab0 address {SCALE_SCANNER_MAC}",
                f"addr add {SCALE_SCANNER_IP}/{prefix} dev lab0",
                "link set lab0 up",
            ],
            scan,
        )
        addresses = scale_addresses(prefix, live)
        by_role = roles(addresses)
        # One macvlan (own MAC) per address on the veth, so that each host is its own device. arp_ignore=1: only
        # the macvlan holding an address answers ARP for it; rp_filter off: replies leave by the first macvlan.
        sysctl = "/proc/sys/net/ipv4/conf/{}/{}"
        settings = [("all", "arp_ignore", "1"), ("all", "rp_filter", "0"), ("default", "rp_filter", "0")]
        script = "; ".join(f"echo {v} > {sysctl.format(c, k)}" for c, k, v in settings)
        subprocess.run(["ip", "netns", "exec", hosts, "sh", "-c", script], check=True, capture_output=True)
        cmds = ["link set lo up", "link set lab0 up"]
        for i, a in enumerate(addresses):
            mac = f"{SCALE_MAC_PREFIX}:{i >> 8:02x}:{i & 255:02x}"
            cmds += [f"link add m{i} link lab0 address {mac} type macvlan mode bridge",
                     f"addr add {a}/{prefix} dev m{i}", f"link set m{i} up"]  # fmt: skip
        cmds += [f"rule add from {a} blackhole" for a in by_role["silent"]]
        ip_batch(cmds, hosts)
        spec = tmp / f"responder-{prefix}-{live}.json"
        spec.write_text(json.dumps(by_role))
        responder = subprocess.Popen(
            ["ip", "netns", "exec", hosts, sys.executable, os.path.abspath(__file__), "--responder", str(spec)],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert responder.stdout is not None
        if responder.stdout.readline().strip() != "ready":
            raise RuntimeError("the responder did not start")
        yield scan, by_role
    finally:
        if responder is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(responder.pid, signal.SIGKILL)
            responder.wait()
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def part_scale(tmp: Path, hosts: int) -> None:
    configs = [(23, hosts)] + [(23, n) for n in (250, 100) if n < hosts] + [(24, 100), (22, 100)]
    print("\n== 3. scale: lightweight hosts (4/10 camera-like HTTP+RTSP, 2/10 close, 3/10 RST, 1/10 silent) ==")
    print(
        f"{'scope':>14} {'addrs':>6} {'live':>5} {'seen':>5} {'named':>5} {'wall s':>7} {'disc s':>7} {'ports s':>8} "
        f"{'probe s':>8} {'packets':>8} {'peak MiB':>9}"
    )
    for prefix, live in configs:
        with scale_lab(tmp, prefix, live) as (scan_ns, by_role):
            target = f"{SCALE_NET}/{prefix}"
            out = tmp / f"scale-{prefix}-{live}.json"
            r = run_measured(camscan_argv(scan_ns, target, out), timeout=900)
            if r.returncode != 0:
                print(f"{target}: camscan scan failed ({r.returncode}): {r.stderr[-1500:]}")
                continue
            phases, packets = parse_phases(r.stdout)
            doc = json.loads(out.read_text())
            seen = {str(a) for d in doc["devices"] for a in [d["ip"], *d.get("other_ips", [])]}
            size = ipaddress.ip_network(target).num_addresses
            makers = {str(d["ip"]): d.get("manufacturer") for d in doc["devices"]}
            named = sum(makers.get(a) == "Hikvision" for a in by_role["camera"])
            print(
                f"{target:>14} {size:>6} {live:>5} {len(seen):>5} {named:>5} {r.seconds:>7.2f} "
                f"{phases.get('discovery', 0):>7.2f} {phases.get('ports', 0):>8.2f} {phases.get('probes', 0):>8.2f} "
                f"{packets or 0:>8} {r.peak_mib:>9.1f}"
            )
            lost = sorted(set(a for v in by_role.values() for a in v) - seen, key=ipaddress.ip_address)
            if lost:
                print(f"{'':>14} not reported: {len(lost)} ({', '.join(lost[:5])}{' ...' if len(lost) > 5 else ''})")
    print("seen: live addresses in the report; named: camera-like hosts reported as Hikvision (of 4 in 10 live);")
    print("peak MiB: the scan process's maximum resident set (os.wait4).")


# ---------------------------------------------------------------------------------------------- responder


def responder_main(spec_path: str) -> None:
    """The scale lab's hosts: run inside the hosts namespace by part 3, stopped by SIGKILL."""
    spec = json.loads(Path(spec_path).read_text())
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_serve(spec["camera"], spec["closer"]))


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
        return b""


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    local = writer.get_extra_info("sockname")[0]
    head = await _read_head(reader)
    path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"/"
    n = int(local.rsplit(".", 1)[1])
    if path == b"/":
        body = f"<html><head><title>Camera {local}</title></head><body>login</body></html>".encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nDate: Tue, 21 Dec 2021 12:08:36 GMT\r\nServer: "
            + SERVER_HEADERS[n % 2].encode()
            + b"\r\nContent-Type: text/html\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
    else:
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    await _close(writer)


async def _rtsp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    for _ in range(4):
        head = await _read_head(reader)
        if not head:
            break
        cseq = re.search(rb"CSeq:\s*(\d+)", head, re.I)
        writer.write(
            b"RTSP/1.0 401 Unauthorized\r\nCSeq: "
            + (cseq.group(1) if cseq else b"1")
            + b'\r\nWWW-Authenticate: Digest realm="IP Camera(C1214)", nonce="0123456789abcdef", '
            b'stale="FALSE"\r\nDate: Tue, Dec 21 2021 12:08:36 GMT\r\n\r\n'
        )
        with contextlib.suppress(OSError):
            await writer.drain()
    await _close(writer)


async def _closer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _close(writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        writer.close()
        await writer.wait_closed()


async def _serve(cameras: list[str], closers: list[str]) -> None:
    servers = []
    if cameras:
        servers.append(await asyncio.start_server(_http, host=cameras, port=80, backlog=256))
        servers.append(await asyncio.start_server(_rtsp, host=cameras, port=554, backlog=256))
    if closers:
        servers.append(await asyncio.start_server(_closer, host=closers, port=80, backlog=256))
    print("ready", flush=True)
    await asyncio.Event().wait()


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--parts", default="lab,nmap,scale", help="comma-separated subset of lab,nmap,scale")
    ap.add_argument("--hosts", type=int, default=500, help="live hosts of the largest scale lab (a /23)")
    ap.add_argument("--lab-runs", type=int, default=1, help="camscan scans of the persona lab (the best is compared)")
    ap.add_argument("--responder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.responder:
        responder_main(args.responder)
        return
    parts = {p.strip() for p in args.parts.split(",")}
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("bench_scan: skipped, it needs root and iproute2 (it builds network namespaces)")
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    print(
        f"camscan scan benchmark (python {sys.version.split()[0]}, {os.cpu_count()} CPUs; camscan defaults: "
        "--rate 500, --timeout 2, --listen 1.5)"
    )
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as d:
        tmp = Path(d)
        if parts & {"lab", "nmap"}:
            part_lab(tmp, max(1, args.lab_runs), "nmap" in parts)
        if "scale" in parts:
            part_scale(tmp, args.hosts)


if __name__ == "__main__":
    main()
