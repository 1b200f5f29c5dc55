"""HTTP(S) probe: `GET /` (and one same-host redirect), then `/favicon.ico`.

Evidence: `http.server`, `http.www_authenticate` (one per header), `http.title`, `http.body` (first 64 KiB),
`http.redirect` (Location of a 3xx to `GET /`), `http.favicon.mmh3` (Shodan's convention).

The client is a small one on asyncio streams rather than an HTTP library, because devices are hostile and
broken: it reads at most MAX_HEAD + MAX_BODY bytes, tolerates bare LF, folded and duplicate headers, a missing
reason phrase and non-UTF-8 bytes, and the whole probe stays within a deadline (3x the context timeout) even
when a device trickles its answer a few bytes at a time. Certificates are not verified: we identify devices,
we do not trust them. The framing parser (`parse_response`) is shared with the RTSP and ONVIF probes.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import html
import re
import ssl
import time
import warnings
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import mmh3

from scanner import __version__
from scanner.model import Evidence, evidence, unique_evidence
from scanner.netctx import ScanContext

SOURCE = "http"
USER_AGENT = f"camscan/{__version__}"
MAX_HEAD = 256 * 1024  # a device may send a 200 kB header; beyond this the head is cut
MAX_BODY = 64 * 1024  # what `http.body` and the title look at (docs/evidence.md: first 64 KiB)
MAX_FAVICON = 256 * 1024  # a favicon larger than this is not hashed (a hash of a cut file is wrong evidence)
MAX_HEADERS = 200
MAX_HEADER_VALUE = 8192
READ_CHUNK = 16384
MAX_MESSAGES = 8  # answers read from one connection (keep-alive, RTSP)
DEADLINE_FACTOR = 3.0  # the whole probe of one port ends within this many context timeouts

_TITLE = re.compile(rb"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]{1,40})", re.IGNORECASE)
_WS = re.compile(r"\s+")


# ----------------------------------------------------------------------------------------- pure parsing


@dataclass(slots=True)
class ParsedResponse:
    """An HTTP (or RTSP) response as far as it could be read: `status` is None when it is not one at all."""

    version: str = ""
    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)  # in order, duplicates kept
    body: bytes = b""
    head_complete: bool = False  # the blank line ending the head was seen (else the head was cut or trickled)
    body_complete: bool = False  # Content-Length reached, last chunk seen, or (without either) nothing to tell

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)

    def header_all(self, name: str) -> list[str]:
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]

    def content_length(self) -> int | None:
        value = self.header("Content-Length")
        if value is None or not value.strip().isdigit() or len(value.strip()) > 15:
            return None
        return int(value.strip())

    def chunked(self) -> bool:
        return "chunked" in (self.header("Transfer-Encoding") or "").lower()


def head_end(raw: bytes) -> tuple[int, int] | None:
    """(end of the head, start of the body) at the first blank line, CRLF or bare LF; None if none yet."""
    candidates = [(i, i + len(sep)) for sep in (b"\r\n\r\n", b"\n\n", b"\n\r\n") if (i := raw.find(sep)) >= 0]
    return min(candidates) if candidates else None


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def dechunk(data: bytes, limit: int = MAX_BODY) -> tuple[bytes, bool]:
    """Decode a chunked body (RFC 9112 section 7.1), at most `limit` bytes; (body, whether the last chunk was
    seen). Malformed framing ends the body where it went wrong: what was decoded so far is kept."""
    out = bytearray()
    pos = 0
    while len(out) < limit:
        eol = data.find(b"\n", pos)
        if eol < 0 or eol - pos > 1024:
            return bytes(out), False
        size_field = data[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            return bytes(out), False
        if size < 0:
            return bytes(out), False
        pos = eol + 1
        if size == 0:
            return bytes(out), True
        chunk = data[pos : pos + size]
        out += chunk[: limit - len(out)]
        if len(chunk) < size:
            return bytes(out), False
        pos += size
        if data[pos : pos + 2] == b"\r\n":
            pos += 2
        elif data[pos : pos + 1] == b"\n":
            pos += 1
    return bytes(out[:limit]), False


def parse_response(raw: bytes, protocol: str = "HTTP/", max_body: int = MAX_BODY) -> ParsedResponse:
    """Status line, headers and body of one response, tolerant of what devices send; never raises.

    A head without its blank line (cut at MAX_HEAD, or a trickle stopped by the deadline) is parsed as far as
    it goes. Header values are cut at MAX_HEADER_VALUE characters, and at most MAX_HEADERS are kept."""
    resp = ParsedResponse()
    try:
        bounds = head_end(raw)
        head, body = (raw[: bounds[0]], raw[bounds[1] :]) if bounds else (raw, b"")
        resp.head_complete = bounds is not None
        lines = head.lstrip(b"\r\n").split(b"\n")
        status_line = _decode(lines[0].rstrip(b"\r")).strip()
        if not status_line.upper().startswith(protocol.upper()):
            return ParsedResponse()
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) != 3:
            return ParsedResponse()
        resp.version, resp.status = parts[0], int(parts[1])
        resp.reason = parts[2] if len(parts) > 2 else ""
        for line_bytes in lines[1:]:
            line = _decode(line_bytes.rstrip(b"\r")[: MAX_HEADER_VALUE + 256])
            if line[:1] in (" ", "\t") and resp.headers:  # obsolete line folding (RFC 9112 section 5.2)
                name, value = resp.headers[-1]
                resp.headers[-1] = (name, (value + " " + line.strip())[:MAX_HEADER_VALUE])
                continue
            name, sep, value = line.partition(":")
            name = name.strip()
            if not sep or not name or len(name) > 256:
                continue
            if len(resp.headers) >= MAX_HEADERS:
                break
            resp.headers.append((name, value.strip()[:MAX_HEADER_VALUE]))
        length = resp.content_length()
        if resp.chunked():
            resp.body, resp.body_complete = dechunk(body, max_body)
        elif length is not None:
            resp.body = body[: min(length, max_body)]
            resp.body_complete = len(body) >= length
        else:
            resp.body = body[:max_body]
            resp.body_complete = True  # read until close: the reader decides when it is done
    except Exception:  # a parser never raises on device input
        return ParsedResponse()
    return resp


def split_responses(raw: bytes, protocol: bytes) -> list[bytes]:
    """The answers one after another on a connection (HTTP keep-alive, RTSP), framed by Content-Length; an
    answer without a length (HTTP until close, chunked) is the last one taken."""
    out: list[bytes] = []
    pos = 0
    while pos < len(raw) and len(out) < MAX_MESSAGES and raw.startswith(protocol, pos):
        bounds = head_end(raw[pos : pos + MAX_HEAD])
        if bounds is None:
            out.append(raw[pos:])
            break
        head = parse_response(raw[pos : pos + bounds[1]], protocol.decode())
        length = head.content_length()
        if length is None and not head.chunked():
            bodiless = protocol == b"RTSP/" or (head.status or 0) in (204, 304) or 100 <= (head.status or 0) < 200
            length = 0 if bodiless else None
        if length is None:
            out.append(raw[pos:])
            break
        end = pos + bounds[1] + length
        out.append(raw[pos:end])
        pos = end
    return out



def message_complete(raw: bytes, protocol: str = "HTTP/", until_close: bool = True) -> bool:
    """Whether `raw` holds a whole response (head, and the body its framing announces). Without a length
    or chunking, an HTTP body runs until the peer closes (`until_close`); an RTSP one is empty."""
    bounds = head_end(raw)
    if bounds is None:
        return False
    resp = parse_response(raw[: bounds[1]], protocol)
    if resp.status is None:
        return True  # not our protocol: nothing more worth waiting for
    body = raw[bounds[1] :]
    if resp.chunked():
        return dechunk(body, MAX_HEAD)[1]
    length = resp.content_length()
    if length is not None:
        return len(body) >= length
    return not until_close


def _charset(resp: ParsedResponse) -> str:
    m = _CHARSET.search(resp.header("Content-Type") or "")
    if m:
        try:
            name = codecs.lookup(m.group(1)).name
            "".encode(name)  # a text codec (not base64 or rot13)
            return name
        except (LookupError, ValueError, TypeError):
            pass
    return "utf-8"


def body_text(resp: ParsedResponse) -> str:
    """The first 64 KiB of the body as text: the declared charset where Python knows it, else UTF-8, with
    replacement characters for what does not decode."""
    try:
        return resp.body[:MAX_BODY].decode(_charset(resp), errors="replace")
    except (LookupError, ValueError):
        return _decode(resp.body[:MAX_BODY])


def extract_title(resp: ParsedResponse) -> str | None:
    """Text of the first HTML <title> in the first 64 KiB: entities unescaped, whitespace collapsed."""
    m = _TITLE.search(resp.body[:MAX_BODY])
    if not m:
        return None
    raw = m.group(1)[:4096]
    try:
        text = raw.decode(_charset(resp), errors="replace")
    except (LookupError, ValueError):
        text = _decode(raw)
    title = _WS.sub(" ", html.unescape(text)).strip()
    return title or None


def response_evidence(resp: ParsedResponse, root: bool = True) -> list[Evidence]:
    """Evidence from one answer. `root`: the answer to `GET /` (only that one's 3xx gives `http.redirect`)."""
    if resp.status is None:
        return []
    out: list[Evidence] = []
    for value in resp.header_all("Server")[:5]:
        if value.strip():
            out.append(evidence("http.server", value, SOURCE))
    for value in resp.header_all("WWW-Authenticate")[:10]:
        if value.strip():
            out.append(evidence("http.www_authenticate", value, SOURCE))
    location = resp.header("Location")
    if root and 300 <= resp.status < 400 and location and location.strip():
        out.append(evidence("http.redirect", location, SOURCE))
    title = extract_title(resp)
    if title:
        out.append(evidence("http.title", title, SOURCE))
    text = body_text(resp).strip()
    if text:
        out.append(evidence("http.body", text, SOURCE))
    return out


def favicon_hash(data: bytes) -> str:
    """Shodan's favicon hash: MurmurHash3 (x86, 32-bit, signed) of the base64 encoding with a newline every
    76 characters (base64.encodebytes), as a decimal string."""
    return str(mmh3.hash(base64.encodebytes(data)))


def favicon_evidence(resp: ParsedResponse) -> list[Evidence]:
    """`http.favicon.mmh3` for a whole favicon; nothing for an error, a cut body, or an HTML page served
    in its place (many web UIs answer every path with their index)."""
    if resp.status != 200 or not resp.body or not resp.body_complete or len(resp.body) >= MAX_FAVICON:
        return []
    ctype = (resp.header("Content-Type") or "").lower()
    start = resp.body[:64].lstrip().lower()
    if "html" in ctype or start.startswith((b"<!doctype html", b"<html")):
        return []
    return [evidence("http.favicon.mmh3", favicon_hash(resp.body), SOURCE)]


def same_host_target(location: str, ip: str, port: int, tls: bool) -> tuple[int, bool, str] | None:
    """(port, tls, path) for a redirect to the same host (relative, or absolute naming `ip`); else None."""
    try:
        base = f"{'https' if tls else 'http'}://{ip}:{port}/"
        url = urlsplit(urljoin(base, location.strip()))
        if url.scheme not in ("http", "https") or url.hostname != ip:
            return None
        new_tls = url.scheme == "https"
        new_port = url.port or (443 if new_tls else 80)
    except ValueError:
        return None
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    if any(c in path for c in "\r\n\x00 "):
        return None
    return new_port, new_tls, path


# ----------------------------------------------------------------------------------------- the network


def insecure_tls_context() -> ssl.SSLContext:
    """A client TLS context that accepts any certificate and old protocol versions and ciphers: the probe
    identifies devices (many cameras speak only TLS 1.0 with weak suites); it sends nothing secret."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    try:
        with warnings.catch_warnings():  # TLS 1.0 is deprecated, and still what many installed cameras speak
            warnings.simplefilter("ignore", DeprecationWarning)
            tls.minimum_version = ssl.TLSVersion.TLSv1
        tls.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pass
    tls.options |= getattr(ssl, "OP_LEGACY_SERVER_CONNECT", 0x4)  # old servers without RFC 5746
    return tls


def build_request(method: str, ip: str, port: int, path: str, tls: bool) -> bytes:
    host = ip if port == (443 if tls else 80) else f"{ip}:{port}"
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii", errors="replace")


async def close_writer(writer: asyncio.StreamWriter, wait: float = 0.5) -> None:
    """Close a connection without waiting long for a peer that never finishes the TLS close."""
    try:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), timeout=wait)
    except (OSError, ssl.SSLError, TimeoutError):
        writer.transport.abort()
    except Exception:  # closing never fails the probe
        writer.transport.abort()


async def read_message(
    reader: asyncio.StreamReader,
    *,
    deadline: float,
    step: float,
    limit: int,
    protocol: str = "HTTP/",
    until_close: bool = True,
    initial: bytes = b"",
) -> tuple[bytes, bytes]:
    """Read one response: until it is complete by its framing, the peer closes, `limit` bytes, a read gap
    longer than `step`, or the monotonic `deadline`. Returns (message, bytes read past it)."""
    buf = bytearray(initial)
    while len(buf) < limit and not message_complete(bytes(buf), protocol, until_close):
        remaining = min(step, deadline - time.monotonic())
        if remaining <= 0:
            break
        try:
            chunk = await asyncio.wait_for(reader.read(min(READ_CHUNK, limit - len(buf))), timeout=remaining)
        except TimeoutError:
            break
        if not chunk:
            break
        buf += chunk
    data = bytes(buf[:limit])
    if until_close:
        return data, b""
    # a persistent connection (RTSP): split off what belongs to the next message
    bounds = head_end(data)
    if bounds is None:
        return data, b""
    length = parse_response(data[: bounds[1]], protocol).content_length() or 0
    end = bounds[1] + length
    return data[:end], data[end:]


async def fetch(
    ctx: ScanContext,
    ip: str,
    port: int,
    path: str,
    *,
    tls: bool,
    deadline: float,
    limit: int = MAX_HEAD + MAX_BODY,
    max_body: int = MAX_BODY,
) -> ParsedResponse | None:
    """GET `path`; the parsed (possibly partial) answer, or None when nothing came (closed port, timeout, TLS
    failure). Refuses hosts outside the scope."""
    if not ctx.allowed(ip):
        return None
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    await ctx.rate.acquire()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                ip,
                port,
                ssl=insecure_tls_context() if tls else None,
                server_hostname="" if tls else None,
                ssl_handshake_timeout=ctx.timeout if tls else None,
            ),
            timeout=min(ctx.timeout, remaining),
        )
    except (OSError, ssl.SSLError, TimeoutError, EOFError):
        return None
    try:
        writer.write(build_request("GET", ip, port, path, tls))
        await asyncio.wait_for(writer.drain(), timeout=ctx.timeout)
        raw, _ = await read_message(reader, deadline=deadline, step=ctx.timeout, limit=limit)
    except (OSError, ssl.SSLError, TimeoutError, EOFError):
        return None
    finally:
        await close_writer(writer)
    if not raw:
        return None
    return parse_response(raw, max_body=max_body)


async def probe(ctx: ScanContext, ip: str, port: int, tls: bool = False) -> list[Evidence]:
    """GET / (following one same-host redirect) and /favicon.ico; Evidence from all of them. Never raises."""
    if not ctx.allowed(ip):
        return []
    deadline = time.monotonic() + DEADLINE_FACTOR * ctx.timeout
    out: list[Evidence] = []
    try:
        # / and /favicon.ico at once: a slow device (or one that trickles) costs one wait, not two
        root, icon = await asyncio.gather(
            fetch(ctx, ip, port, "/", tls=tls, deadline=deadline),
            fetch(
                ctx,
                ip,
                port,
                "/favicon.ico",
                tls=tls,
                deadline=deadline,
                limit=MAX_HEAD + MAX_FAVICON,
                max_body=MAX_FAVICON,
            ),
        )
        if root is None or root.status is None:
            return []
        out += response_evidence(root, root=True)
        location = root.header("Location")
        if root.status is not None and 300 <= root.status < 400 and location:
            target = same_host_target(location, ip, port, tls)
            if target is not None and target != (port, tls, "/"):
                t_port, t_tls, t_path = target
                followed = await fetch(ctx, ip, t_port, t_path, tls=t_tls, deadline=deadline)
                if followed is not None:
                    out += response_evidence(followed, root=False)
        if icon is not None:
            out += favicon_evidence(icon)
    except Exception as exc:  # a probe never raises; partial results are kept
        ctx.errors.append(f"http {ip}:{port}: {exc.__class__.__name__}")
    return unique_evidence(out)
