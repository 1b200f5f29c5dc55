"""Banner grab: what a service says first, unasked. `ssh.banner` (port 22: the identification line of
RFC 4253 section 4.2, `SSH-2.0-dropbear_2014.63`), `ftp.banner` (21: the first line of the greeting) with
`ftp.greeting` (the whole greeting, its lines joined by a single space, when it has more than one) and
`telnet.banner` (23: the first 256 bytes of text, with the option negotiation of
RFC 854/855 removed).

An FTP greeting is a reply (RFC 959 section 4.2): one line `220 text`, or several, `220-first` ... `220 last`,
where the last line repeats the code followed by a space. Camera makers often put the product on a later line
(a WebGate eDVR sends a line with no code at all, then `220-eDVR FTP Server v1.1 (c)Copyright WebGate Inc.`,
then two more), so the whole greeting is read, up to the final line, bounded in lines, bytes and time.

Telnet servers often negotiate options before they print anything and wait for the answer; the probe
refuses every option (WONT/DONT, which RFC 854 says a client may always answer) so the greeting comes. Nothing
else is sent.
"""

from __future__ import annotations

import asyncio
import re
import time

from scanner.camera_ports import BANNER_KINDS
from scanner.model import Evidence, evidence
from scanner.netctx import ScanContext
from scanner.probes.http import close_writer

PORT_KINDS = BANNER_KINDS  # {21: ftp, 22: ssh, 23: telnet}, from the port table
TELNET_BYTES = 256
MAX_LINE = 1024  # an SSH identification line is at most 255 bytes (RFC 4253); FTP greetings are short
MAX_READ = 4096  # raw bytes read from a telnet service (negotiation included)
TELNET_IDLE = 0.5  # once some text came, a telnet greeting is taken as finished after this much silence
MAX_FTP_BYTES = 2048  # of an FTP greeting; camera greetings are one to four short lines
MAX_FTP_LINES = 16  # RFC 959 sets no bound: a longer greeting is cut here
FTP_IDLE = 0.5  # once a line came, the rest of an unfinished greeting is waited for at most this long
_FTP_FINAL = re.compile(r"^\d{3}(?: |$)")  # the last line of a reply: its code, then a space (or nothing)

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240


def strip_telnet(data: bytes) -> tuple[bytes, bytes]:
    """(text, refusals): the data bytes of a telnet stream with IAC sequences removed (IAC IAC is a literal
    0xFF; subnegotiation IAC SB ... IAC SE is dropped whole), and the WONT/DONT answers to its DO/WILL
    requests. An IAC sequence cut at the end of `data` is dropped."""
    text = bytearray()
    replies = bytearray()
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b != IAC:
            text.append(b)
            i += 1
            continue
        if i + 1 >= n:
            break
        cmd = data[i + 1]
        if cmd == IAC:
            text.append(IAC)
            i += 2
        elif cmd in (DO, DONT, WILL, WONT):
            if i + 2 >= n:
                break
            if cmd == DO:
                replies += bytes((IAC, WONT, data[i + 2]))
            elif cmd == WILL:
                replies += bytes((IAC, DONT, data[i + 2]))
            i += 3
        elif cmd == SB:
            end = data.find(bytes((IAC, SE)), i + 2)
            if end < 0:
                break
            i = end + 2
        else:  # NOP, GA, AYT and the other two-byte commands
            i += 2
    return bytes(text), bytes(replies)


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace").strip()


def first_line(data: bytes) -> str:
    """The first non-empty line of `data` (at most MAX_LINE bytes), decoded and stripped."""
    for line in data[:MAX_LINE].replace(b"\r\n", b"\n").split(b"\n"):
        text = _text(line.replace(b"\r", b""))
        if text:
            return text
    return ""


def ftp_greeting(data: bytes, final: bool = True) -> tuple[list[str], bool]:
    """(lines, complete): the non-empty lines of an FTP greeting, decoded and stripped, up to and including its
    final reply line (`220 text`; a multi-line reply opens with `220-`, and lines sent before any code are kept),
    at most MAX_FTP_LINES lines of the first MAX_FTP_BYTES bytes. `complete` is whether the final line (or the
    line cap) was reached. With `final=False` a line still arriving (no newline yet) is left out."""
    parts = data[:MAX_FTP_BYTES].split(b"\n")
    tail = parts.pop()
    if final:
        parts.append(tail)
    lines: list[str] = []
    for raw in parts:
        text = _text(raw.replace(b"\r", b""))
        if not text:
            continue
        lines.append(text)
        if _FTP_FINAL.match(text) or len(lines) >= MAX_FTP_LINES:
            return lines, True
    return lines, False


def parse_banner(data: bytes, kind: str) -> list[Evidence]:
    """`<kind>.banner` from what the service sent first; nothing for an empty greeting or an unknown kind."""
    if kind == "telnet":
        value = _text(strip_telnet(data[:MAX_READ])[0][:TELNET_BYTES])
    elif kind == "ssh":
        value = first_line(data)
    elif kind == "ftp":
        lines = ftp_greeting(data)[0]
        if not lines:
            return []
        out = [evidence("ftp.banner", lines[0], "banner")]  # the contract: the first line
        if len(lines) > 1:  # the whole greeting too: some makers name themselves only on a later line
            out.append(evidence("ftp.greeting", " ".join(lines), "banner"))
        return out
    else:
        return []
    return [evidence(f"{kind}.banner", value, "banner")] if value else []


async def grab(ctx: ScanContext, ip: str, port: int, kind: str) -> bytes:
    """Read what the service sends within the timeout (telnet: answering its negotiation with refusals)."""
    if not ctx.allowed(ip):
        return b""
    deadline = time.monotonic() + ctx.timeout
    await ctx.rate.acquire()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout=ctx.timeout)
    except (OSError, TimeoutError):
        return b""
    buf = bytearray()
    answered = 0  # bytes of negotiation already answered
    try:
        while len(buf) < {"telnet": MAX_READ, "ftp": MAX_FTP_BYTES}.get(kind, MAX_LINE):
            wait = deadline - time.monotonic()
            if kind == "ftp":
                lines, complete = ftp_greeting(bytes(buf), final=False)
                if complete:
                    break
                if lines:
                    wait = min(wait, FTP_IDLE)
            elif kind == "telnet":
                text, replies = strip_telnet(bytes(buf))
                if len(text) >= TELNET_BYTES:
                    break
                if text.strip():
                    wait = min(wait, TELNET_IDLE)
                if len(replies) > answered:
                    writer.write(replies[answered:])
                    answered = len(replies)
            elif b"\n" in buf:
                break
            if wait <= 0:
                break
            try:
                chunk = await asyncio.wait_for(reader.read(1024), timeout=wait)
            except TimeoutError:
                break
            if not chunk:
                break
            buf += chunk
    except (OSError, EOFError):
        pass
    finally:
        await close_writer(writer)
    return bytes(buf)


async def probe(ctx: ScanContext, ip: str, port: int, kind: str | None = None) -> list[Evidence]:
    """The banner of the service on `ip:port`; `kind` (ssh, ftp, telnet) defaults by port. Never raises."""
    kind = kind or PORT_KINDS.get(port)
    if kind is None:
        return []
    try:
        return parse_banner(await grab(ctx, ip, port, kind), kind)
    except Exception as exc:  # a probe never raises
        ctx.errors.append(f"banner {ip}:{port}: {exc.__class__.__name__}")
        return []
