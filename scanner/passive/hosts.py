"""Host assembly at the end of a passive audit: one Host per device from what the dissector kept.

Addresses are joined by MAC (model.merge_observations), so a device's IPv4 and IPv6 addresses become one
host. ARP (or IPv6 Neighbor Discovery; else the MAC inside a modified EUI-64 link-local address) gives an
address its MAC unless the MAC claims too many addresses (a router or proxy ARP: PROXY_ARP) or the address
was claimed by two MACs; a DHCP client
whose address never showed becomes a host of its MAC alone; a SYN-ACK alone does not make a device (an
internet server would), so open ports are added only to hosts seen otherwise.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from scanner.model import Host, Observation, evidence, merge_observations, normalise_mac
from scanner.passive.dissect import MAX_HOSTS, private_address

if TYPE_CHECKING:
    from scanner.passive.dissect import Analyzer

PROXY_ARP = 8  # a MAC claiming more addresses than this in ARP is a router or a proxy, not one device


def assemble_hosts(a: Analyzer) -> list[Host]:
    """Close every open flow, then one Host per device: by address, joined by MAC (model.merge_observations);
    DHCP clients whose address never showed become hosts of their MAC alone."""
    a.tcp.close_all()
    a.proxies = {mac for mac, ips in a.mac_ips.items() if len(ips) > PROXY_ARP}
    macs: dict[str, str] = {}
    for ip, (mac, ts) in a.arp.items():
        if mac not in a.proxies and ip not in a.arp_conflicts:
            macs[ip] = mac
            proto = "ndp" if ":" in ip else "arp"
            a.add(ip, [evidence("mac", mac, proto)], ts, proto)
    for ip in list(a.evidence):
        derived = None if ip in macs else eui64_mac(ip)
        if derived is not None and derived not in a.proxies:
            macs[ip] = derived
            a.add(ip, [evidence("mac", derived, "eui64")], 0.0, "eui64")
    orphans: list[Host] = []
    for client, items in a.dhcp.items():
        assigned = a.dhcp_ip.get(client)
        found = list(items)
        found.append(evidence("mac", client, "dhcp"))
        found[-1].source = "pcap:dhcp"
        if assigned and private_address(assigned):
            a.add(assigned, found, 0.0, "dhcp")
            macs.setdefault(assigned, client)
        else:
            orphans.append(Host(id=client, mac=client, evidence=found))
    for ip, ports in a.tcp.open_ports.items():
        if ip in a.evidence:  # a SYN-ACK alone does not make a device (an internet server would)
            ordered = sorted(ports, key=lambda s: int(s.split("/")[0]))
            a.add(ip, [evidence("port.open", p, "tcp") for p in ordered], 0.0, "tcp")
    observations = []
    for ip, found_here in a.evidence.items():
        claimed = macs.get(ip) or next((e.value for e in found_here.values() if e.key == "mac"), None)
        observations.append(Observation(ip, list(found_here.values()), normalise_mac(claimed) if claimed else None))
    hosts = merge_observations(observations)
    by_mac = {h.mac: h for h in hosts if h.mac}
    for orphan in orphans:
        if orphan.mac in by_mac:
            have = {(e.key, e.value) for e in by_mac[orphan.mac].evidence}
            by_mac[orphan.mac].evidence += [e for e in orphan.evidence if (e.key, e.value) not in have]
        else:
            hosts.append(orphan)
    return hosts


def eui64_mac(ip: str) -> str | None:
    """The MAC inside an IPv6 link-local address formed by modified EUI-64 (RFC 4291 §2.5.1 and appendix A:
    the MAC split by ff:fe, its universal/local bit inverted), as many cameras form theirs; None for an IPv4
    address or another kind of interface identifier (random, stable-private: RFC 7217, 8981)."""
    if not ip.startswith("fe80:"):
        return None
    try:
        iid = ipaddress.IPv6Address(ip).packed[8:]
    except ValueError:
        return None
    if iid[3:5] != b"\xff\xfe":
        return None
    raw = bytes([iid[0] ^ 0x02]) + iid[1:3] + iid[5:8]
    if raw[0] & 1:  # a group address is no interface's
        return None
    return raw.hex(":")


def limitations(a: Analyzer) -> list[str]:
    """What the capture could not tell: undecoded traffic, dropped messages, ARP that was not trusted."""
    out = []
    if a.counts.get("ipv6 fragments"):
        out.append(f"{a.counts['ipv6 fragments']} IPv6 fragments were not reassembled (their datagrams not read)")
    if a.public_sources:
        out.append(
            f"{a.public_sources} messages from public (internet) addresses were not used: only devices with "
            "private, link-local or shared addresses (IPv6: link-local and unique local; a global IPv6 address "
            "cannot be told from an internet server's) are reported"
        )
    if a.dropped_hosts:
        out.append(f"more than {MAX_HOSTS} addresses: {a.dropped_hosts} messages about further ones dropped")
    if a.counts.get("fragments"):
        out.append(f"{a.counts['fragments']} fragmented datagrams could not be reassembled (too many at once)")
    for mac in sorted(a.proxies):
        out.append(
            f"{mac} answered ARP for {len(a.mac_ips[mac])} addresses (proxy ARP or a router): those addresses "
            "were not given its MAC"
        )
    if a.arp_conflicts:
        out.append(f"{len(a.arp_conflicts)} addresses were claimed by more than one MAC in ARP; no MAC kept")
    for what, n in sorted(a.counts.items()):
        if what.startswith("link type"):
            out.append(f"{n} packets of unsupported {what} were not decoded")
        elif what.startswith("flows"):
            out.append(f"{n} TCP {what}")
    return out
