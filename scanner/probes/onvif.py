"""ONVIF device service probes (ONVIF Core Specification, Device Management).

- `get_system_date_and_time`: a raw SOAP 1.2 POST to /onvif/device_service, no credentials (ONVIF Core
  section 5.12.1 allows it before authentication). No Evidence key holds the time: the answer only confirms
  that an ONVIF device service is there, so the function returns a flag. Parsed with defusedxml, DTDs refused.
- `device_information`: GetDeviceInformation through onvif-zeep-async with the user's credentials (an
  intrusive check, off unless asked for): `onvif.manufacturer`, `onvif.model`, `onvif.firmware`,
  `onvif.serial`, `onvif.hardware_id`. zeep's parser is hardened for the call (no DTD, no entities, no huge
  trees), every call is bounded by `asyncio.wait_for`, and the client is always closed. A refusal is a line in
  `ctx.errors` naming the host, never the credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from scanner.model import Evidence, evidence
from scanner.netctx import Credentials, ScanContext
from scanner.probes.http import MAX_HEAD, close_writer, parse_response, read_message

SOURCE = "onvif"
PATH = "/onvif/device_service"
MAX_SOAP = 64 * 1024  # a GetSystemDateAndTime answer is about 1.5 kB
NS_SOAP = "http://www.w3.org/2003/05/soap-envelope"
NS_TDS = "http://www.onvif.org/ver10/device/wsdl"
NS_TT = "http://www.onvif.org/ver10/schema"
ACTION = f"{NS_TDS}/GetSystemDateAndTime"
SKEW_ADJUST = 5.0  # seconds of device clock offset worth compensating in the WS-Security timestamp

REQUEST_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<s:Envelope xmlns:s="{NS_SOAP}"><s:Body xmlns:tds="{NS_TDS}"><tds:GetSystemDateAndTime/></s:Body></s:Envelope>'
).encode()

# GetDeviceInformationResponse field -> Evidence key (ONVIF Core section 8.3.1)
DEVICE_FIELDS = {
    "Manufacturer": "onvif.manufacturer",
    "Model": "onvif.model",
    "FirmwareVersion": "onvif.firmware",
    "SerialNumber": "onvif.serial",
    "HardwareId": "onvif.hardware_id",
}


# ----------------------------------------------------------------------------------------- pure parsing


@dataclass(frozen=True, slots=True)
class DeviceTime:
    onvif: bool  # a GetSystemDateAndTimeResponse came (or an ONVIF fault: the service is there, behind auth)
    utc: dt.datetime | None = None  # the device's UTC clock, when it said


def _local(tag: object) -> tuple[str, str]:
    text = tag if isinstance(tag, str) else ""
    if text.startswith("{"):
        ns, _, name = text[1:].partition("}")
        return ns, name
    return "", text


def _int(parent: Any, name: str) -> int | None:
    child = next((c for c in parent if _local(c.tag)[1] == name), None) if parent is not None else None
    text = (child.text or "").strip() if child is not None else ""
    return int(text) if text.isdigit() and len(text) <= 4 else None


def parse_system_date_and_time(body: bytes) -> DeviceTime:
    """What a GetSystemDateAndTime answer (the HTTP body) says; `DeviceTime(False)` for anything else
    (HTML, garbage, a DTD or entity bomb, oversize). Never raises."""
    if not body or len(body) > MAX_SOAP:
        return DeviceTime(False)
    try:
        root = ElementTree.fromstring(body, forbid_dtd=True)
    except (ElementTree.ParseError, DefusedXmlException, ValueError, UnicodeError, LookupError):
        return DeviceTime(False)
    except Exception:  # a parser never raises on device input
        return DeviceTime(False)
    if _local(root.tag) != (NS_SOAP, "Envelope"):
        return DeviceTime(False)
    soap_body = next((c for c in root if _local(c.tag) == (NS_SOAP, "Body")), None)
    if soap_body is None:
        return DeviceTime(False)
    first = next((c for c in soap_body if isinstance(c.tag, str)), None)
    if first is None:
        return DeviceTime(False)
    if _local(first.tag) == (NS_SOAP, "Fault"):
        # Some devices (Axis) authenticate every request; an ONVIF error subcode still shows the service.
        subcodes = [(e.text or "") for e in first.iter() if _local(e.tag)[1] == "Value"]
        return DeviceTime(any("NotAuthorized" in s or "ter:" in s for s in subcodes))
    if _local(first.tag) != (NS_TDS, "GetSystemDateAndTimeResponse"):
        return DeviceTime(False)
    utc: dt.datetime | None = None
    try:
        stamp = next(e for e in first.iter() if _local(e.tag)[1] == "UTCDateTime")
        date = next((c for c in stamp if _local(c.tag)[1] == "Date"), None)
        clock = next((c for c in stamp if _local(c.tag)[1] == "Time"), None)
        parts = [
            _int(date, "Year"),
            _int(date, "Month"),
            _int(date, "Day"),
            _int(clock, "Hour"),
            _int(clock, "Minute"),
            _int(clock, "Second"),
        ]
        if all(p is not None for p in parts):
            y, mo, d, h, mi, s = (int(p or 0) for p in parts)
            utc = dt.datetime(y, mo, d, h, mi, min(s, 59), tzinfo=dt.UTC)
    except (StopIteration, ValueError, OverflowError):
        utc = None
    return DeviceTime(True, utc)


def device_information_evidence(info: Any) -> list[Evidence]:
    """Evidence from a GetDeviceInformation result (a zeep object, or any object/dict with the five fields)."""
    out = []
    for name, key in DEVICE_FIELDS.items():
        value = info.get(name) if isinstance(info, dict) else getattr(info, name, None)
        if isinstance(value, str | int) and str(value).strip():
            out.append(evidence(key, str(value), SOURCE))
    return out


# ----------------------------------------------------------------------------------------- the network


def build_request(ip: str, port: int) -> bytes:
    host = ip if port == 80 else f"{ip}:{port}"
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\n"
        f'Content-Type: application/soap+xml; charset=utf-8; action="{ACTION}"\r\n'
        f"Content-Length: {len(REQUEST_BODY)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + REQUEST_BODY


async def system_date_and_time(ctx: ScanContext, ip: str, port: int) -> DeviceTime:
    """GetSystemDateAndTime on `ip:port` by a raw SOAP POST; DeviceTime(False) when no ONVIF answer came."""
    if not ctx.allowed(ip):
        return DeviceTime(False)
    deadline = time.monotonic() + 2 * ctx.timeout
    await ctx.rate.acquire()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout=ctx.timeout)
    except (OSError, TimeoutError):
        return DeviceTime(False)
    try:
        writer.write(build_request(ip, port))
        await asyncio.wait_for(writer.drain(), timeout=ctx.timeout)
        raw, _ = await read_message(reader, deadline=deadline, step=ctx.timeout, limit=MAX_HEAD + MAX_SOAP)
    except (OSError, TimeoutError, EOFError):
        return DeviceTime(False)
    finally:
        await close_writer(writer)
    resp = parse_response(raw, max_body=MAX_SOAP + 1)
    if resp.status is None:
        return DeviceTime(False)
    return parse_system_date_and_time(resp.body)


async def get_system_date_and_time(ctx: ScanContext, ip: str, port: int) -> bool:
    """Whether an ONVIF device service answers on `ip:port` (no credentials sent). Never raises."""
    try:
        return (await system_date_and_time(ctx, ip, port)).onvif
    except Exception as exc:  # a probe never raises
        ctx.errors.append(f"onvif {ip}:{port}: {exc.__class__.__name__}")
        return False


def _import_onvif() -> tuple[Any, Any, type[BaseException]]:
    """(ONVIFCamera, zeep Settings, zeep Fault). The onvif package calls logging.basicConfig() when first
    imported; the root logger is put back as it was, so the library does not decide what camscan logs."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        from onvif import ONVIFCamera  # type: ignore[import-untyped]
        from zeep.exceptions import Fault
        from zeep.settings import Settings
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return ONVIFCamera, Settings, Fault


def hardened_settings(settings_cls: Any) -> Any:
    """zeep Settings for device answers: no DTD (so no entity bomb), no entities, no external fetches, no
    huge trees (onvif-zeep-async's defaults turn huge trees on), lenient about sloppy but harmless XML."""
    return settings_cls(strict=False, xml_huge_tree=False, forbid_dtd=True, forbid_entities=True, forbid_external=True)


async def device_information(ctx: ScanContext, ip: str, port: int, credentials: Credentials | None) -> list[Evidence]:
    """GetDeviceInformation with `credentials` (WS-UsernameToken digest). Never raises; [] on any failure."""
    if credentials is None or not ctx.allowed(ip):
        return []
    try:
        camera_cls, settings_cls, fault_cls = _import_onvif()
    except ImportError:
        ctx.limitations.append("ONVIF GetDeviceInformation skipped: onvif-zeep-async is not installed")
        return []
    # The device's clock, so that the WS-Security Created stamp is in its window (many cameras run off NTP).
    device_time = await system_date_and_time(ctx, ip, port)
    step = ctx.timeout * 2
    await ctx.rate.acquire()
    camera: Any = None
    try:
        camera = camera_cls(ip, port, credentials.username, credentials.password, no_cache=True, adjust_time=False)
        if device_time.utc is not None:
            skew = device_time.utc - dt.datetime.now(dt.UTC)
            if abs(skew.total_seconds()) > SKEW_ADJUST:
                camera.dt_diff = skew
        service = await asyncio.wait_for(camera.create_devicemgmt_service(), timeout=step)
        hardened = hardened_settings(settings_cls)
        for client in (service.zeep_client, service.zeep_client_authless):
            if client is not None:
                client.settings = hardened
        info = await asyncio.wait_for(service.GetDeviceInformation(), timeout=step)
        return device_information_evidence(info)
    except fault_cls:
        ctx.errors.append(f"onvif {ip}:{port}: GetDeviceInformation refused (wrong user name or password?)")
    except (TimeoutError, ConnectionError):
        pass  # silent or closed: not an error of ours
    except Exception as exc:  # a probe never raises
        if not _is_network_failure(exc):
            # the class only: messages can carry the device's bytes or, from some libraries, request details
            ctx.errors.append(f"onvif {ip}:{port}: GetDeviceInformation failed ({exc.__class__.__name__})")
    finally:
        if camera is not None:
            with contextlib.suppress(Exception):  # closing never fails the probe
                await asyncio.wait_for(camera.close(), timeout=step)
    return []


def _is_network_failure(exc: BaseException) -> bool:
    """A refused or dropped connection, however the library wrapped it (aiohttp, ONVIFError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError | TimeoutError | asyncio.TimeoutError):
            return True
        if current.__class__.__module__.startswith("aiohttp") and "Connect" in current.__class__.__name__:
            return True
        current = current.__cause__ or current.__context__
    return False
