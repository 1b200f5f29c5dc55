"""`--nmap`: nmap -sV on the open ports found, run as a program (`-oX -`), its XML streamed through
defusedxml. nmap's conclusions become `nmap.*` Evidence; its own data files are never read or copied."""

from __future__ import annotations

import asyncio
import io
import shutil
from collections.abc import Iterable, Mapping

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from scanner.model import Evidence, Observation, evidence
from scanner.netctx import ScanContext

SOURCE = "nmap"
FIELDS = ("product", "version", "extrainfo", "devicetype")
MAX_XML = 32 * 1024 * 1024


def parse_nmap_xml(data: bytes) -> list[Observation]:
    """Observations from nmap's XML output (streamed element by element; bad XML gives what was read)."""
    found: list[Observation] = []
    try:
        for _event, elem in ElementTree.iterparse(io.BytesIO(data[:MAX_XML]), events=("end",)):
            if elem.tag != "host":
                continue
            addr = next((a.get("addr") for a in elem.findall("address") if a.get("addrtype") == "ipv4"), None)
            if not addr:
                continue
            obs = Observation(addr)
            for port in elem.iter("port"):
                state = port.find("state")
                if state is None or state.get("state") != "open":
                    continue
                svc = port.find("service")
                if svc is None:
                    continue
                items: list[Evidence] = []
                for f in FIELDS:
                    v = (svc.get(f) or "").strip()
                    if v:
                        items.append(evidence(f"nmap.{f}", v, SOURCE))
                items.extend(evidence("nmap.cpe", (c.text or "").strip(), SOURCE) for c in svc.findall("cpe") if c.text)
                obs.evidence.extend(items)
            if obs.evidence:
                found.append(obs)
            elem.clear()
    except (ElementTree.ParseError, DefusedXmlException, ValueError, LookupError):
        pass  # LookupError: an XML declaration naming an encoding Python does not know
    return found


async def scan(ctx: ScanContext, open_ports: Mapping[str, Iterable[int]], timeout: float = 120.0) -> list[Observation]:
    exe = shutil.which("nmap")
    if exe is None:
        ctx.limitations.append("--nmap: nmap is not installed (Debian: apt-get install nmap); scanned without it")
        return []
    hosts = {ip: sorted(set(p)) for ip, p in open_ports.items() if ctx.allowed(ip) and p}
    if not hosts:
        return []
    ports = sorted({p for ps in hosts.values() for p in ps})
    argv = [
        exe,
        "-sV",
        "-Pn",
        "-n",
        "--open",
        "-oX",
        "-",
        "-p",
        ",".join(map(str, ports)),
        "--max-rate",
        str(int(ctx.rate.rate)),
    ]
    if ctx.scope.interface and ctx.scope.interface != "lo":
        argv += ["-e", ctx.scope.interface]
    argv += sorted(hosts)
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        ctx.errors.append(f"nmap -sV did not finish in {timeout:.0f} s; its results are left out")
        return []
    if proc.returncode != 0:
        ctx.errors.append(f"nmap exited with {proc.returncode}: {err.decode(errors='replace').strip()[:300]}")
    return [o for o in parse_nmap_xml(out) if ctx.allowed(o.ip)]
