"""The probes' pure parsers on bytes: answers as devices send them (from public captures, bug reports and
vendor documentation, each named), and the malformed, oversized and hostile ones a parser must survive."""

from __future__ import annotations

import base64
import datetime as dt
import struct
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from scanner.model import BODY_CAP, VALUE_CAP
from scanner.probes import banner, http, onvif, rtsp, tls


def pairs(items: list[object]) -> list[tuple[str, str]]:
    return [(e.key, e.value) for e in items]  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------- HTTP

# Hikvision V5.x root page (App-webs, JavaScript redirect to the login page): see lab persona hik-bullet.
HIKVISION_ROOT = (
    b"HTTP/1.1 200 OK\r\n"
    b"Date: Mon, 16 Mar 2020 08:12:32 GMT\r\n"
    b"Server: App-webs/\r\n"
    b'ETag: "4b3-1f7-5e6f3a10"\r\n'
    b"Content-Type: text/html\r\n"
    b"Content-Length: 93\r\n"
    b"Connection: close\r\n\r\n"
    b"<html><head><title></title></head><body><script>window.location.href = '/doc/page/login.asp';"
)

# Dahua web UI 401 (realm "Login to <serial>"), with a second, Basic challenge after the Digest one.
DAHUA_401 = (
    b"HTTP/1.1 401 Unauthorized\r\n"
    b'WWW-Authenticate: Digest realm="Login to 4L0263APAZ3A5F1", qop="auth", nonce="1234", opaque="abcd"\r\n'
    b'WWW-Authenticate: Basic realm="Login to 4L0263APAZ3A5F1"\r\n'
    b"Content-Length: 0\r\n\r\n"
)

# Axis firmware 5.x (Boa) redirect to the index page.
AXIS_REDIRECT = (
    b"HTTP/1.0 302 Found\r\n"
    b"Server: Boa/0.94.14rc21\r\n"
    b"Location: /view/index.shtml\r\n"
    b"Content-Type: text/html\r\n\r\n"
    b"<html><head><title>  Moved\n  Temporarily </title></head></html>"
)


def test_hikvision_root_page() -> None:
    resp = http.parse_response(HIKVISION_ROOT)
    assert (resp.version, resp.status, resp.reason) == ("HTTP/1.1", 200, "OK")
    assert resp.head_complete and resp.body_complete
    ev = pairs(http.response_evidence(resp))
    assert ("http.server", "App-webs/") in ev
    assert not any(k == "http.title" for k, _ in ev)  # an empty <title> says nothing
    body = dict(ev)["http.body"]
    assert body.startswith("<html>") and body.endswith("login.asp';")


def test_duplicate_www_authenticate_headers_give_one_evidence_each() -> None:
    ev = pairs(http.response_evidence(http.parse_response(DAHUA_401)))
    assert ev == [
        ("http.www_authenticate", 'Digest realm="Login to 4L0263APAZ3A5F1", qop="auth", nonce="1234", opaque="abcd"'),
        ("http.www_authenticate", 'Basic realm="Login to 4L0263APAZ3A5F1"'),
    ]


def test_redirect_and_title_whitespace_collapsed() -> None:
    ev = pairs(http.response_evidence(http.parse_response(AXIS_REDIRECT)))
    assert ("http.redirect", "/view/index.shtml") in ev
    assert ("http.title", "Moved Temporarily") in ev
    assert ("http.server", "Boa/0.94.14rc21") in ev
    # only the answer to GET / gives http.redirect
    followed = pairs(http.response_evidence(http.parse_response(AXIS_REDIRECT), root=False))
    assert not any(k == "http.redirect" for k, _ in followed)


def test_bare_lf_missing_reason_and_folded_header() -> None:
    raw = b"HTTP/1.0 200\nServer: thttpd/2.25b\n  29dec2003\nX-Other: 1\n\n<title>A&amp;B &#169; &lt;cam&gt;</title>"
    resp = http.parse_response(raw)
    assert (resp.status, resp.reason) == (200, "")
    assert resp.header("server") == "thttpd/2.25b 29dec2003"
    assert http.extract_title(resp) == "A&B © <cam>"


def test_non_utf8_bytes_are_replaced_not_fatal() -> None:
    raw = b"HTTP/1.1 200 OK\r\nServer: Web\xff\xfeServer\r\nContent-Type: text/html\r\n\r\n<title>Caf\xe9</title>"
    ev = dict(pairs(http.response_evidence(http.parse_response(raw))))
    assert ev["http.server"] == "Web\ufffd\ufffdServer"
    assert ev["http.title"] == "Caf\ufffd"


def test_declared_charset_is_honoured() -> None:
    title = "网络摄像机".encode("gb2312")  # "network camera", as Chinese web UIs ship it
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=gb2312\r\n\r\n<TITLE>" + title + b"</TITLE>"
    assert http.extract_title(http.parse_response(raw)) == "网络摄像机"
    # a codec that is not a text encoding is ignored, not fatal
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=base64\r\n\r\n<title>x</title>"
    assert http.extract_title(http.parse_response(raw)) == "x"


def test_200_kB_header_line_is_capped() -> None:
    raw = b"HTTP/1.1 200 OK\r\nServer: " + b"A" * 200_000 + b"\r\nContent-Length: 2\r\n\r\nok"
    resp = http.parse_response(raw)
    assert resp.status == 200
    assert len(resp.header("Server") or "") == http.MAX_HEADER_VALUE
    assert resp.content_length() == 2 and resp.body == b"ok"
    (server,) = [e for e in http.response_evidence(resp) if e.key == "http.server"]
    assert server.value == "A" * VALUE_CAP


def test_head_cut_without_blank_line_is_parsed_as_far_as_it_goes() -> None:
    resp = http.parse_response(b"HTTP/1.1 401 Unauthorized\r\nServer: Webs\r\nWWW-Authenticate: Basic realm=")
    assert resp.status == 401 and not resp.head_complete
    assert resp.header("Server") == "Webs"
    assert resp.body == b""


def test_too_many_headers_are_bounded() -> None:
    raw = b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 10_000 + b"\r\n"
    assert len(http.parse_response(raw).headers) == http.MAX_HEADERS


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\n",
        b"SSH-2.0-OpenSSH_7.4\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1\r\n\r\n",
        b"\x00\xff" * 1000,
        b"<html>not a response</html>",
        b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n",  # RTSP is not HTTP
    ],
    ids=["empty", "blank", "ssh", "status-not-a-number", "status-4-digits", "no-status", "binary", "html", "rtsp"],
)
def test_not_http_gives_nothing(raw: bytes) -> None:
    resp = http.parse_response(raw)
    assert resp.status is None
    assert http.response_evidence(resp) == []


def test_content_length_cuts_the_body_and_tells_completeness() -> None:
    resp = http.parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello world")
    assert resp.body == b"hello" and resp.body_complete
    resp = http.parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nhello")
    assert resp.body == b"hello" and not resp.body_complete
    resp = http.parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello")
    assert resp.content_length() is None and resp.body == b"hello"


def test_chunked_body() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"7;ext=1\r\n<title>\r\n6\r\nIPCam \r\n8\r\n</title>\r\n0\r\n\r\n"
    )
    resp = http.parse_response(raw)
    assert resp.body == b"<title>IPCam </title>" and resp.body_complete
    assert http.extract_title(resp) == "IPCam"


@pytest.mark.parametrize(
    ("data", "body", "complete"),
    [
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello", True),
        (b"5\nhello\n0\n\n", b"hello", True),  # bare LF
        (b"5\r\nhel", b"hel", False),  # cut
        (b"zz\r\nhello\r\n", b"", False),  # not hex
        (b"5\r\nhelloXX3\r\nabc\r\n0\r\n", b"hello", False),  # missing CRLF: ends where it went wrong
        (b"FFFFFFFFFFFFFFFF\r\nabc", b"abc", False),  # an absurd size is bounded by what came
        (b"1" * 5000, b"", False),  # no line end in sight
    ],
    ids=["plain", "bare-lf", "cut", "not-hex", "bad-framing", "huge-size", "no-eol"],
)
def test_dechunk(data: bytes, body: bytes, complete: bool) -> None:
    got_body, got_complete = http.dechunk(data)
    assert got_body.startswith(body) and got_complete == complete


def test_dechunk_is_bounded() -> None:
    data = b"".join(b"400\r\n" + b"x" * 1024 + b"\r\n" for _ in range(200)) + b"0\r\n\r\n"
    body, complete = http.dechunk(data, limit=http.MAX_BODY)
    assert len(body) == http.MAX_BODY and not complete


def test_body_evidence_is_first_64_KiB() -> None:
    raw = b"HTTP/1.1 200 OK\r\n\r\n" + b"<p>" + b"x" * 200_000
    (body,) = [e for e in http.response_evidence(http.parse_response(raw)) if e.key == "http.body"]
    assert len(body.value) == BODY_CAP == http.MAX_BODY


def test_title_only_in_first_64_KiB() -> None:
    raw = b"HTTP/1.1 200 OK\r\n\r\n" + b" " * 70_000 + b"<title>late</title>"
    assert http.extract_title(http.parse_response(raw, max_body=200_000)) is None


@pytest.mark.parametrize(
    ("raw", "done"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no", False),
        (b"HTTP/1.1 200 OK\r\nServer: x\r\n", False),
        (b"HTTP/1.1 200 OK\r\n\r\nuntil close", False),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n", False),
        (b"garbage\r\n\r\n", True),
    ],
    ids=["length-done", "length-short", "head-cut", "until-close", "chunked-done", "chunked-open", "garbage"],
)
def test_message_complete(raw: bytes, done: bool) -> None:
    assert http.message_complete(raw) is done


@pytest.mark.parametrize(
    ("location", "tls", "expected"),
    [
        ("/doc/page/login.asp", False, (8080, False, "/doc/page/login.asp")),
        ("login.htm?lang=en", False, (8080, False, "/login.htm?lang=en")),
        ("http://10.0.0.5:8080/index.html", False, (8080, False, "/index.html")),
        ("https://10.0.0.5/", False, (443, True, "/")),
        ("http://10.0.0.5/x", True, (80, False, "/x")),
        ("http://10.0.0.6/", False, None),  # another host
        ("//evil.example/", False, None),  # scheme-relative: another host
        ("ftp://10.0.0.5/", False, None),
        ("javascript:alert(1)", False, None),
        ("http://10.0.0.5:99999/", False, None),  # a port that cannot be
        ("/a b\r\nX-Injected: 1", False, None),
    ],
    ids=[
        "relative",
        "relative-no-slash",
        "absolute-same",
        "to-https",
        "to-http",
        "other-host",
        "scheme-relative",
        "ftp",
        "javascript",
        "bad-port",
        "injection",
    ],
)
def test_same_host_target(location: str, tls: bool, expected: tuple[int, bool, str] | None) -> None:
    port = 8080 if not tls else 443
    assert http.same_host_target(location, "10.0.0.5", port, tls) == expected


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """Reference MurmurHash3 x86_32 (Austin Appleby's public domain algorithm), signed, to check mmh3 use."""
    c1, c2, h = 0xCC9E2D51, 0x1B873593, seed
    n = len(data) // 4
    for (k,) in struct.iter_unpack("<I", data[: 4 * n]):
        k = (k * c1) & 0xFFFFFFFF
        k = ((k << 15) | (k >> 17)) & 0xFFFFFFFF
        k = (k * c2) & 0xFFFFFFFF
        h ^= k
        h = ((h << 13) | (h >> 19)) & 0xFFFFFFFF
        h = (h * 5 + 0xE6546B64) & 0xFFFFFFFF
    tail, k = data[4 * n :], 0
    for i, b in enumerate(tail):
        k |= b << (8 * i)
    if tail:
        k = (k * c1) & 0xFFFFFFFF
        k = ((k << 15) | (k >> 17)) & 0xFFFFFFFF
        k = (k * c2) & 0xFFFFFFFF
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def test_favicon_hash_is_shodans_convention() -> None:
    icon = bytes(range(256)) * 3  # long enough for several 76-character base64 lines
    encoded = base64.encodebytes(icon)
    assert encoded.count(b"\n") > 3 and all(len(line) <= 76 for line in encoded.split(b"\n"))
    assert http.favicon_hash(icon) == str(murmur3_32(encoded))
    assert http.favicon_hash(b"") == "0"
    assert any(int(http.favicon_hash(bytes([i]) * 100)) < 0 for i in range(20))  # signed


def test_favicon_evidence() -> None:
    ico = b"\x00\x00\x01\x00\x01\x00\x10\x10" + b"\x00" * 100
    ok = http.parse_response(
        b"HTTP/1.1 200 OK\r\nContent-Type: image/x-icon\r\nContent-Length: 108\r\n\r\n" + ico, max_body=http.MAX_FAVICON
    )
    assert pairs(http.favicon_evidence(ok)) == [("http.favicon.mmh3", http.favicon_hash(ico))]
    cut = http.parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + ico)
    assert http.favicon_evidence(cut) == []
    missing = http.parse_response(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop")
    assert http.favicon_evidence(missing) == []
    index = http.parse_response(b"HTTP/1.1 200 OK\r\n\r\n<!DOCTYPE html><html></html>")
    assert http.favicon_evidence(index) == []
    svg = http.parse_response(b"HTTP/1.1 200 OK\r\nContent-Type: image/svg+xml\r\n\r\n<svg/>")
    assert len(http.favicon_evidence(svg)) == 1


# ------------------------------------------------------------------------------------------------- TLS


def make_der(subject: str, issuer: str | None = None) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string(subject))
        .issuer_name(x509.Name.from_rfc4514_string(issuer or subject))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.DER)


def test_certificate_subject_and_issuer() -> None:
    # Hikvision's self-signed default certificate names the maker (lab persona and public scan data)
    der = make_der("CN=IPC,O=HIKVISION,C=CN")
    assert pairs(tls.parse_certificate(der)) == [
        ("tls.subject", "CN=IPC,O=HIKVISION,C=CN"),
        ("tls.issuer", "CN=IPC,O=HIKVISION,C=CN"),
    ]
    der = make_der("CN=192.168.1.108,OU=Dahua,O=Dahua Technology", "CN=Dahua CA,O=Dahua Technology")
    assert dict(pairs(tls.parse_certificate(der))) == {
        "tls.subject": "CN=192.168.1.108,OU=Dahua,O=Dahua Technology",
        "tls.issuer": "CN=Dahua CA,O=Dahua Technology",
    }


def test_certificate_special_characters_are_escaped() -> None:
    der = make_der("CN=cam\\, front,O=A\\+B")
    assert dict(pairs(tls.parse_certificate(der)))["tls.subject"] == "CN=cam\\, front,O=A\\+B"


@pytest.mark.parametrize(
    "der",
    [b"", b"\x30\x03\x02\x01\x01", b"\x00" * 100, b"-----BEGIN CERTIFICATE-----", b"\x30" * 100_000],
    ids=["empty", "tiny-asn1", "zeros", "pem-text", "oversize"],
)
def test_certificate_garbage(der: bytes) -> None:
    assert tls.parse_certificate(der) == []


def test_certificate_truncated() -> None:
    der = make_der("CN=IPC")
    assert tls.parse_certificate(der[: len(der) // 2]) == []


# ------------------------------------------------------------------------------------------------- RTSP

# Hikvision: OPTIONS without a Server header, DESCRIBE challenged (google/ExoPlayer issue 9800).
HIK_OPTIONS = (
    b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n"
    b"Public: OPTIONS, DESCRIBE, PLAY, PAUSE, SETUP, TEARDOWN, SET_PARAMETER, GET_PARAMETER\r\n"
    b"Date:  Wed, Dec 15 2021 10:00:00 GMT\r\n\r\n"
)
HIK_DESCRIBE_401 = (
    b"RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\n"
    b'WWW-Authenticate: Digest realm="IP Camera(C1214)", nonce="a5e8a5e8a5e8", stale="FALSE"\r\n'
    b'WWW-Authenticate: Basic realm="IP Camera(C1214)"\r\n'
    b"Date:  Wed, Dec 15 2021 10:00:00 GMT\r\n\r\n"
)
# live555-based encoders announce themselves in Server and answer DESCRIBE with an SDP.
LIVE555_DESCRIBE = (
    b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nDate: Thu, Jan 01 1970 00:00:00 GMT\r\n"
    b"Server: LIVE555 Streaming Media v2013.02.11\r\nContent-Base: rtsp://10.0.0.5/\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: 10\r\n\r\nv=0\r\no=- 1"
)


def test_rtsp_hikvision_challenge() -> None:
    assert pairs(rtsp.rtsp_evidence([HIK_OPTIONS, HIK_DESCRIBE_401])) == [
        ("rtsp.www_authenticate", 'Digest realm="IP Camera(C1214)", nonce="a5e8a5e8a5e8", stale="FALSE"'),
        ("rtsp.www_authenticate", 'Basic realm="IP Camera(C1214)"'),
    ]


def test_rtsp_server_from_either_answer_deduplicated() -> None:
    options = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nServer: Rtsp Server/3.0\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n"
    describe = (
        b"RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\nServer: Rtsp Server/3.0\r\n"
        b'WWW-Authenticate: Digest realm="Login to 4L0263APAZ3A5F1", nonce="1"\r\n\r\n'
    )
    assert pairs(rtsp.rtsp_evidence([options, describe])) == [
        ("rtsp.server", "Rtsp Server/3.0"),
        ("rtsp.www_authenticate", 'Digest realm="Login to 4L0263APAZ3A5F1", nonce="1"'),
    ]
    resp = rtsp.parse_rtsp_response(LIVE555_DESCRIBE)
    assert resp.status == 200 and resp.body == b"v=0\r\no=- 1"
    assert pairs(rtsp.rtsp_evidence([LIVE555_DESCRIBE])) == [("rtsp.server", "LIVE555 Streaming Media v2013.02.11")]


def test_rtsp_challenge_outside_401_is_ignored() -> None:
    raw = b'RTSP/1.0 200 OK\r\nCSeq: 1\r\nWWW-Authenticate: Basic realm="x"\r\n\r\n'
    assert rtsp.rtsp_evidence([raw]) == []


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"HTTP/1.1 200 OK\r\nServer: App-webs/\r\n\r\n",
        b"\xff" * 5000,
        b"RTSP/1.0\r\n\r\n",
        b"RTSP/1.0 2x0 OK\r\nServer: a\r\n\r\n",
    ],
    ids=["empty", "http", "binary", "no-status", "bad-status"],
)
def test_rtsp_garbage(raw: bytes) -> None:
    assert rtsp.parse_rtsp_response(raw).status is None
    assert rtsp.rtsp_evidence([raw]) == []


def test_rtsp_request_has_cseq() -> None:
    req = rtsp.build_request("DESCRIBE", "rtsp://10.0.0.5:554/", 2)
    assert req.startswith(b"DESCRIBE rtsp://10.0.0.5:554/ RTSP/1.0\r\nCSeq: 2\r\n") and req.endswith(b"\r\n\r\n")
    assert b"Accept: application/sdp" in req


# ------------------------------------------------------------------------------------------------- ONVIF

# A GetSystemDateAndTimeResponse as ONVIF Core 8.3.10 describes it (and Hikvision devices send it).
GSDT = b"""<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl"
 xmlns:tt="http://www.onvif.org/ver10/schema"><env:Body><tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>
<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>
<tt:TimeZone><tt:TZ>CST-8:00:00</tt:TZ></tt:TimeZone>
<tt:UTCDateTime><tt:Time><tt:Hour>2</tt:Hour><tt:Minute>3</tt:Minute><tt:Second>4</tt:Second></tt:Time>
<tt:Date><tt:Year>2024</tt:Year><tt:Month>9</tt:Month><tt:Day>18</tt:Day></tt:Date></tt:UTCDateTime>
<tt:LocalDateTime><tt:Time><tt:Hour>10</tt:Hour><tt:Minute>3</tt:Minute><tt:Second>4</tt:Second></tt:Time>
<tt:Date><tt:Year>2024</tt:Year><tt:Month>9</tt:Month><tt:Day>18</tt:Day></tt:Date></tt:LocalDateTime>
</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse></env:Body></env:Envelope>"""

NOT_AUTHORIZED = b"""<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"
 xmlns:ter="http://www.onvif.org/ver10/error"><SOAP-ENV:Body><SOAP-ENV:Fault><SOAP-ENV:Code>
<SOAP-ENV:Value>SOAP-ENV:Sender</SOAP-ENV:Value><SOAP-ENV:Subcode><SOAP-ENV:Value>ter:NotAuthorized</SOAP-ENV:Value>
</SOAP-ENV:Subcode></SOAP-ENV:Code><SOAP-ENV:Reason><SOAP-ENV:Text xml:lang="en">Sender not Authorized</SOAP-ENV:Text>
</SOAP-ENV:Reason></SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>"""

BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE env:Envelope [<!ENTITY lol "lol">'
    + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10))
    + b']><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body>&lol9;</env:Body></env:Envelope>'
)


def test_system_date_and_time() -> None:
    got = onvif.parse_system_date_and_time(GSDT)
    assert got == onvif.DeviceTime(True, dt.datetime(2024, 9, 18, 2, 3, 4, tzinfo=dt.UTC))


def test_system_date_and_time_without_a_usable_clock_still_confirms_onvif() -> None:
    body = GSDT.replace(b"<tt:Month>9</tt:Month>", b"<tt:Month>13</tt:Month>")
    assert onvif.parse_system_date_and_time(body) == onvif.DeviceTime(True, None)
    body = GSDT.replace(b"<tt:Year>2024</tt:Year>", b"")
    assert onvif.parse_system_date_and_time(body) == onvif.DeviceTime(True, None)


def test_onvif_fault_confirms_the_service() -> None:
    assert onvif.parse_system_date_and_time(NOT_AUTHORIZED).onvif


@pytest.mark.parametrize(
    "body",
    [
        b"",
        BOMB,
        b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://example.invalid/x.dtd"><x/>',
        GSDT.replace(b"http://www.w3.org/2003/05/soap-envelope", b"http://schemas.xmlsoap.org/soap/envelope/"),
        GSDT.replace(b"GetSystemDateAndTimeResponse", b"GetHostnameResponse"),
        b"<html><body>404 Not Found</body></html>",
        b"<env:Envelope xmlns:env='http://www.w3.org/2003/05/soap-envelope'><env:Body/></env:Envelope>",
        GSDT[:300],
        GSDT + b"<!--" + b"x" * onvif.MAX_SOAP + b"-->",
        b"\xff\xfe<\x00",
    ],
    ids=[
        "empty",
        "entity-bomb",
        "external-dtd",
        "soap11",
        "other-operation",
        "html",
        "empty-body",
        "cut",
        "oversize",
        "binary",
    ],
)
def test_not_onvif(body: bytes) -> None:
    assert onvif.parse_system_date_and_time(body) == onvif.DeviceTime(False)


def test_device_information_evidence() -> None:
    info = SimpleNamespace(
        Manufacturer="HIKVISION",
        Model="DS-2CD2085G1-I",
        FirmwareVersion="V5.6.5 build 200316",
        SerialNumber="DS-2CD2085G1-I20200414AAWRE33853311",
        HardwareId="88",
    )
    assert pairs(onvif.device_information_evidence(info)) == [
        ("onvif.manufacturer", "HIKVISION"),
        ("onvif.model", "DS-2CD2085G1-I"),
        ("onvif.firmware", "V5.6.5 build 200316"),
        ("onvif.serial", "DS-2CD2085G1-I20200414AAWRE33853311"),
        ("onvif.hardware_id", "88"),
    ]
    partial = {"Manufacturer": " Dahua ", "Model": "", "FirmwareVersion": None, "SerialNumber": ["x"]}
    assert pairs(onvif.device_information_evidence(partial)) == [("onvif.manufacturer", "Dahua")]
    assert onvif.device_information_evidence(None) == []


def test_onvif_hardened_zeep_settings_refuse_the_bomb() -> None:
    from zeep.exceptions import DTDForbidden, EntitiesForbidden
    from zeep.loader import parse_xml
    from zeep.settings import Settings

    settings = onvif.hardened_settings(Settings)
    assert settings.forbid_dtd and settings.forbid_entities and not settings.xml_huge_tree
    with pytest.raises((DTDForbidden, EntitiesForbidden)):
        parse_xml(BOMB, None, settings=settings)


# ------------------------------------------------------------------------------------------------- banners

TELNET_BUSYBOX = (  # BusyBox telnetd as on many DVRs: negotiation first, then the prompt
    b"\xff\xfd\x01\xff\xfd\x1f\xff\xfb\x01\xff\xfb\x03\r\n(none) login: "
)


@pytest.mark.parametrize(
    ("data", "kind", "expected"),
    [
        (b"SSH-2.0-dropbear_2014.63\r\n", "ssh", "SSH-2.0-dropbear_2014.63"),
        (b"SSH-2.0-OpenSSH_7.4\r\n\x00\x00\x04\x1c\x0a\x14binary kex", "ssh", "SSH-2.0-OpenSSH_7.4"),
        (b"220 (vsFTPd 3.0.3)\r\n", "ftp", "220 (vsFTPd 3.0.3)"),
        (b"220-Welcome to DVR FTP\r\n220 Ready\r\n", "ftp", "220-Welcome to DVR FTP"),
        (b"\r\n220 Hikvision FTP\n", "ftp", "220 Hikvision FTP"),
        (b"220 caf\xe9 ftp\r\n", "ftp", "220 caf\ufffd ftp"),
        (TELNET_BUSYBOX, "telnet", "(none) login:"),
        (b"\xff\xfa\x18\x01\xff\xf0Welcome\xff\xff", "telnet", "Welcome\ufffd"),
        (b"A" * 1000, "telnet", "A" * banner.TELNET_BYTES),
        (b"", "ssh", None),
        (b"\xff\xfd\x01\xff\xfb", "telnet", None),
        (b"   \r\n", "ftp", None),
        (b"SSH-2.0-x\r\n", "smtp", None),
    ],
    ids=[
        "dropbear",
        "openssh-then-binary",
        "vsftpd",
        "ftp-multiline",
        "leading-blank",
        "non-utf8",
        "telnet-busybox",
        "telnet-sb-and-iac-iac",
        "telnet-256",
        "empty",
        "telnet-only-negotiation",
        "blank",
        "unknown-kind",
    ],
)
def test_parse_banner(data: bytes, kind: str, expected: str | None) -> None:
    got = [p for p in pairs(banner.parse_banner(data, kind)) if p[0].endswith(".banner")]
    assert got == ([] if expected is None else [(f"{kind}.banner", expected)])


def test_a_multi_line_ftp_greeting_gives_its_first_line_and_the_whole() -> None:
    """`ftp.banner` keeps the contract (the first line); `ftp.greeting` carries the whole of a longer greeting."""
    assert pairs(banner.parse_banner(b"220-Welcome to DVR FTP\r\n220 Ready\r\n", "ftp")) == [
        ("ftp.banner", "220-Welcome to DVR FTP"),
        ("ftp.greeting", "220-Welcome to DVR FTP 220 Ready"),
    ]
    assert pairs(banner.parse_banner(b"220 (vsFTPd 3.0.3)\r\n", "ftp")) == [("ftp.banner", "220 (vsFTPd 3.0.3)")]


# A WebGate eDVR (nmap-service-probes match line "WebGate <model> eDVR camera ftpd": a line with no reply code,
# then a three-line 220 reply naming the product on its first line; model and address filled with lab values)
WEBGATE_FTP = (
    b"ftpd - accept the connection from 10.77.0.9\n"
    b"220-eDVR FTP Server v1.1 (c)Copyright WebGate Inc. 2008-2010\r\n"
    b"220-Welcome to DS1004\r\n"
    b"220 You will be disconnected after 180 seconds of inactivity.\r\n"
)


def test_ftp_greeting_is_read_whole_and_names_the_recorder() -> None:
    from scanner.fingerprint.engine import Engine
    from scanner.fingerprint.rules import load_ruleset

    first, ev = banner.parse_banner(WEBGATE_FTP, "ftp")
    assert (first.key, first.value) == ("ftp.banner", "ftpd - accept the connection from 10.77.0.9")
    assert ev.key == "ftp.greeting" and ev.value == (
        "ftpd - accept the connection from 10.77.0.9 220-eDVR FTP Server v1.1 (c)Copyright WebGate Inc. 2008-2010 "
        "220-Welcome to DS1004 220 You will be disconnected after 180 seconds of inactivity."
    )
    r = Engine(load_ruleset()).identify([(ev.key, ev.value)])
    assert (r.manufacturer, r.device_type, r.matched) == ("WebGate", "recorder", ["ftp.banner/webgate-edvr"])


def test_ftp_greeting_ends_at_its_final_line() -> None:
    # what a capture holds after the greeting (the answer to USER) is not part of it
    assert banner.ftp_greeting(b"220-Hello\r\n220 Ready\r\n331 Password required\r\n") == (
        ["220-Hello", "220 Ready"],
        True,
    )
    assert banner.ftp_greeting(b"220\r\n331 x\r\n") == (["220"], True)  # a code alone is a final line
    # a greeting cut before its final line: what came, not complete
    assert banner.ftp_greeting(b"220-Hello\r\n220-Still going") == (["220-Hello", "220-Still going"], False)
    # while reading, a line with no newline yet is not taken
    assert banner.ftp_greeting(b"220-Hello\r\n220 Rea", final=False) == (["220-Hello"], False)
    assert banner.ftp_greeting(b"220 Ready\r\n", final=False) == (["220 Ready"], True)


def test_ftp_greeting_is_bounded() -> None:
    many = b"".join(b"220-line %d\r\n" % i for i in range(100)) + b"220 end\r\n"
    lines, complete = banner.ftp_greeting(many)
    assert len(lines) == banner.MAX_FTP_LINES and complete
    (ev,) = banner.parse_banner(b"220-" + b"x" * 100_000, "ftp")
    assert len(ev.value) == banner.MAX_FTP_BYTES
    assert banner.parse_banner(b"\r\n \r\n\n", "ftp") == []


def test_strip_telnet_refuses_every_option() -> None:
    text, replies = banner.strip_telnet(TELNET_BUSYBOX)
    assert text == b"\r\n(none) login: "
    assert replies == b"\xff\xfc\x01\xff\xfc\x1f\xff\xfe\x01\xff\xfe\x03"  # WONT echo, WONT naws, DONT echo, DONT sga
    # a sequence cut at the end is not answered until it is whole
    assert banner.strip_telnet(b"\xff\xfd") == (b"", b"")
    assert banner.strip_telnet(b"\xff\xfa\x18 unterminated") == (b"", b"")


def test_first_line_is_bounded() -> None:
    assert banner.first_line(b"x" * 100_000) == "x" * banner.MAX_LINE
