"""Older Hikvision firmware answers a SADP inquiry to the multicast group, not to the asker: the scan hears
those answers too (on the scan interface only). Two namespaces on a veth, made and removed here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs network namespaces (root)")

DEVICE = r"""
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 37020))
group = socket.inet_aton("239.255.255.250") + socket.inet_aton("10.79.0.11")
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("10.79.0.11"))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, struct.pack("b", 1))
print("ready", flush=True)
while True:
    data, addr = s.recvfrom(4096)
    if b"<Types>inquiry</Types>" in data:
        s.sendto(b'<?xml version="1.0" encoding="UTF-8"?><ProbeMatch><Uuid>X</Uuid><Types>inquiry</Types>'
                 b'<DeviceDescription>DS-7608NI-K2</DeviceDescription><MAC>c0-56-e3-00-00-11</MAC></ProbeMatch>',
                 ("239.255.255.250", 37020))
"""

SCANNER = r"""
import asyncio, json
from scanner.discovery import sadp
from scanner.netctx import ScanContext
from scanner.scope import RateLimiter, Scope
ctx = ScanContext(scope=Scope.build(["10.79.0.0/24"], interface="lab0"), rate=RateLimiter(100), listen=1.0)
obs = asyncio.run(sadp.discover(ctx, []))
print(json.dumps([[o.ip, o.mac, sorted(e.key for e in o.evidence)] for o in obs]))
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    dev, scan = f"cssg{os.getpid()}-dev", f"cssg{os.getpid()}-scan"
    try:
        ip("netns", "add", dev)
        ip("netns", "add", scan)
        ip("-n", scan, "link", "add", "lab0", "type", "veth", "peer", "name", "lab0", "netns", dev)
        for ns, addr in ((dev, "10.79.0.11"), (scan, "10.79.0.2")):
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "lab0")
            ip("-n", ns, "link", "set", "lab0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield dev, scan
    finally:
        for ns in (dev, scan):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def test_answers_to_the_group_are_heard(pair: tuple[str, str]) -> None:
    dev, scan = pair
    device = subprocess.Popen(
        ["ip", "netns", "exec", dev, sys.executable, "-c", DEVICE], stdout=subprocess.PIPE, text=True
    )
    try:
        assert device.stdout is not None and device.stdout.readline().strip() == "ready"
        time.sleep(0.2)
        proc = subprocess.run(
            ["ip", "netns", "exec", scan, sys.executable, "-c", SCANNER],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=os.getcwd(),
        )
        assert proc.returncode == 0, proc.stderr
        found = json.loads(proc.stdout.strip().splitlines()[-1])
        assert found == [["10.79.0.11", "c0:56:e3:00:00:11", ["mac", "sadp.device_description", "sadp.mac"]]]
    finally:
        device.kill()
        device.wait()
        if device.stdout is not None:
            device.stdout.close()
