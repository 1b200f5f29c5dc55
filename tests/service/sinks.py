"""Real receivers for alert tests, on 127.0.0.1 in the test process: a webhook receiver (http.server in a
thread) that can be told to fail its first N requests, and an SMTP server (aiosmtpd) that keeps every mail."""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookSink:
    url: str
    fail_first: int = 0
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def webhook_sink(fail_first: int = 0, host: str = "127.0.0.1") -> Iterator[WebhookSink]:
    sink = WebhookSink(url="", fail_first=fail_first)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with sink.lock:
                sink.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                failing = len(sink.requests) <= sink.fail_first
            self.send_response(500 if failing else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    sink.url = f"http://{host}:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@dataclass
class SmtpSink:
    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def smtp_sink(
    host: str = "127.0.0.1", tls: ssl.SSLContext | None = None, login: tuple[str, str] | None = None
) -> Iterator[SmtpSink]:
    """An SMTP server; with `tls` it requires STARTTLS, with `login` it requires AUTH (over TLS) with those."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    sink = SmtpSink(host, 0)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            sink.messages.append(msg)
            sink.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            sink.sessions.append({"tls": session.ssl is not None, "login": session.auth_data})
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        ok = (
            login is not None
            and isinstance(auth_data, LoginPassword)
            and (auth_data.login.decode(), auth_data.password.decode()) == login
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None)

    options: dict[str, Any] = {}
    if tls is not None:
        options.update(tls_context=tls, require_starttls=True)
    if login is not None:
        options.update(authenticator=authenticator, auth_required=True, auth_require_tls=tls is not None)

    with socket.socket() as probe:  # a free port: aiosmtpd's readiness check cannot connect to port 0
        probe.bind((host, 0))
        port = int(probe.getsockname()[1])
    controller = Controller(Handler(), hostname=host, port=port, **options)
    controller.start()
    sink.port = port
    try:
        yield sink
    finally:
        controller.stop()


def in_namespace(namespace: str, fn: Callable[[], T]) -> T:
    """Run `fn` in a new thread that first joins the network namespace `namespace` (setns(2)): the sockets
    it opens, and the threads it starts, live in that namespace (so a receiver started there listens on
    the namespace's own loopback, where a service inside the lab can reach it)."""
    import ctypes
    import os

    libc = ctypes.CDLL(None, use_errno=True)
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
            try:
                if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                    raise OSError(ctypes.get_errno(), f"setns into {namespace} failed")
            finally:
                os.close(fd)
            result.append(fn())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"in-{namespace}")
    thread.start()
    thread.join(60)
    if failure:
        raise failure[0]
    return result[0]
