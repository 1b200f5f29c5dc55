"""Debian's headless Chromium for the browser tests: where it is, the flags this closed machine needs, and
the PNG check. The flags keep Chromium from reaching out on its own (background networking, component
updates, sync, QUIC): only the pages a test opens, on loopback or file://, are fetched."""

from __future__ import annotations

import shutil
import struct

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
]


def chromium_path() -> str:
    """The browser, or the test fails saying how to install it (a browser test is never skipped silently)."""
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: run scripts/system-deps.sh (apt-get install chromium)")
    return CHROMIUM


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG; fails the test when the bytes are not one."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)
