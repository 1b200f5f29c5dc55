#!/usr/bin/env python3
"""ARP packets, the kernel's /proc/net/arp text and DHCP messages (scanner/discovery/arp.py, dhcp.py): never
raises; every MAC that comes out is normalised and unicast, every address a dotted quad."""

from __future__ import annotations

import ipaddress

from tests.fuzz.contract import check_mac, fuzz, instrumented

with instrumented(__name__):
    from scanner.discovery import arp, dhcp


def _ipv4(text: object) -> None:
    assert isinstance(text, str) and str(ipaddress.IPv4Address(text)) == text


def check(data: bytes) -> None:
    pair = arp.parse_arp(data)
    if pair is not None:
        ip, mac = pair
        _ipv4(ip)
        check_mac(mac)
        assert ip != "0.0.0.0" and mac not in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff")
        assert not int(mac[:2], 16) & 1, f"multicast sender MAC {mac}"
    table = arp.parse_proc_net_arp(data.decode("utf-8", "replace"))
    for mac in table.values():
        check_mac(mac)
        assert mac != "00:00:00:00:00:00"
    msg = dhcp.parse_dhcp(data)
    if msg is not None:
        assert msg.op in (1, 2)
        check_mac(msg.mac)
        assert not int(msg.mac[:2], 16) & 1
        _ipv4(msg.ciaddr)
        _ipv4(msg.yiaddr)
        if msg.requested_ip is not None:
            _ipv4(msg.requested_ip)
        for text in (msg.hostname, msg.vendor_class):
            assert text is None or (isinstance(text, str) and text and text == text.strip())


fuzz(__name__, check)
