#!/usr/bin/env python3
"""HTTP and RTSP answers (scanner/probes/http.py, rtsp.py): the framing parser, the Evidence of an answer and of
a favicon, keep-alive splitting, chunked bodies, message completeness and the same-host redirect check. Never
raises; headers, bodies and answers stay within their caps; a split never invents bytes; a redirect is never
followed to another host."""

from __future__ import annotations

from tests.fuzz.contract import check_evidence, fuzz, instrumented

with instrumented(__name__):
    from scanner.probes import http, rtsp

IP = "10.77.0.11"


def _check_parsed(resp: http.ParsedResponse, max_body: int) -> None:
    assert isinstance(resp, http.ParsedResponse)
    if resp.status is None:
        assert not resp.headers and not resp.body
        return
    assert 0 <= resp.status <= 999
    assert len(resp.headers) <= http.MAX_HEADERS
    for name, value in resp.headers:
        assert name and len(name) <= 256 and len(value) <= http.MAX_HEADER_VALUE
    assert len(resp.body) <= max_body


def _check_split(data: bytes, protocol: bytes) -> list[bytes]:
    parts = http.split_responses(data, protocol)
    assert len(parts) <= http.MAX_MESSAGES
    joined = b"".join(parts)
    assert data.startswith(joined), "split_responses invented or reordered bytes"
    for part in parts:
        assert part.startswith(protocol)
    return parts


def check(data: bytes) -> None:
    resp = http.parse_response(data)
    _check_parsed(resp, http.MAX_BODY)
    check_evidence(http.response_evidence(resp, root=True), ("http.",))
    check_evidence(http.response_evidence(resp, root=False), ("http.",))
    favicon = http.favicon_evidence(resp)
    check_evidence(favicon, ("http.favicon.mmh3",))
    assert all(int(e.value) == int(e.value) for e in favicon)
    for part in _check_split(data, b"HTTP/"):
        _check_parsed(http.parse_response(part), http.MAX_BODY)
    http.message_complete(data)
    http.message_complete(data, until_close=False)
    body, last = http.dechunk(data, 4096)
    assert len(body) <= 4096 and isinstance(last, bool)

    answer = rtsp.parse_rtsp_response(data)
    _check_parsed(answer, rtsp.MAX_BODY)
    check_evidence(rtsp.response_evidence(answer), ("rtsp.server", "rtsp.www_authenticate"))
    items = rtsp.rtsp_evidence(_check_split(data, b"RTSP/"))
    check_evidence(items, ("rtsp.server", "rtsp.www_authenticate"))
    assert len({(e.key, e.value) for e in items}) == len(items)

    location = data[:2048].decode("utf-8", "replace")
    for port, tls in ((80, False), (443, True)):
        target = http.same_host_target(location, IP, port, tls)
        if target is not None:
            new_port, new_tls, path = target
            assert isinstance(new_port, int) and 0 <= new_port <= 65535 and isinstance(new_tls, bool)
            assert path.startswith("/") and not any(c in path for c in "\r\n\x00 ")


fuzz(__name__, check)
