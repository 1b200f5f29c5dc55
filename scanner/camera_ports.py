"""The one table of the TCP ports camscan checks, and which probes each port gets.

The port check (discovery/ports.py) tries every port here; the probe phase (scan.py) gives each open port
the probes its row names; the passive audit (passive/) knows the banner ports from it. A probe that runs
once per host (ONVIF GetDeviceInformation) takes the first open port, in table order, whose row names it:
that is why the web ports come first, in the order ONVIF device services are most often found on them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CameraPort:
    number: int
    service: str  # what usually listens there
    probes: frozenset[str]  # the probe backends (scanner.backends) this port gets when open
    tls: bool = False  # the HTTP probe speaks TLS here
    note: str = ""


def _port(number: int, service: str, probes: str = "", tls: bool = False, note: str = "") -> CameraPort:
    return CameraPort(number, service, frozenset(probes.split()), tls, note)


# Sources: vendor manuals (Hikvision SDK 8000, Dahua 37777, Xiongmai 34567, Reolink 9000, TP-Link Tapo ONVIF
# 2020), IANA (21, 22, 23, 80, 443, 554, 8554 RTSP alternate), Synology DSM (5000/5001).
PORTS: tuple[CameraPort, ...] = (
    _port(80, "http", "http onvif", note="web UI; the ONVIF device service of most cameras"),
    _port(8080, "http", "http onvif", note="alternative web port; ONVIF on some"),
    _port(2020, "http", "http onvif", note="ONVIF on TP-Link Tapo cameras"),
    _port(8899, "http", "http onvif", note="ONVIF on many small Chinese cameras"),
    _port(8000, "hikvision-sdk", "onvif", note="Hikvision SDK (not HTTP); ONVIF on a few"),
    _port(443, "https", "http tls", tls=True, note="web UI over TLS"),
    _port(8443, "https", "http tls", tls=True, note="alternative TLS web port"),
    _port(5001, "https", "http tls", tls=True, note="NAS and recorder web UI over TLS (Synology DSM)"),
    _port(8081, "http", "http", note="alternative web port"),
    _port(5000, "http", "http", note="NAS and recorder web UI (Synology DSM)"),
    _port(554, "rtsp", "rtsp", note="RTSP video"),
    _port(8554, "rtsp", "rtsp", note="RTSP alternate"),
    _port(21, "ftp", "banners", note="FTP (recorders' firmware and snapshot upload)"),
    _port(22, "ssh", "banners", note="SSH"),
    _port(23, "telnet", "banners", note="telnet (a risk check looks for it)"),
    _port(9000, "reolink", note="Reolink media port"),
    _port(34567, "xiongmai", note="Xiongmai (XMEye) NetSurveillance"),
    _port(37777, "dahua-sdk", note="Dahua SDK"),
)

BY_NUMBER: dict[int, CameraPort] = {p.number: p for p in PORTS}
CAMERA_PORTS: tuple[int, ...] = tuple(sorted(BY_NUMBER))
BANNER_KINDS: dict[int, str] = {p.number: p.service for p in PORTS if "banners" in p.probes}
