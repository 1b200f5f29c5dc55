"""A netns lab of every bundled persona, up once per test session and down at the end (root needed:
CI runs as root, so these tests run there; elsewhere they are skipped with the reason)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner.lab import control


def netns_possible() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


needs_netns = pytest.mark.skipif(not netns_possible(), reason="netns lab needs root and iproute2")


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[control.LabState]:
    if not netns_possible():
        pytest.skip("netns lab needs root and iproute2")
    state_dir = tmp_path_factory.mktemp("labstate")
    state = control.up("netns", state_dir=state_dir)
    try:
        yield state
    finally:
        control.down(state_dir)


def in_scanner(state: control.LabState, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    import subprocess

    return subprocess.run(
        ["ip", "netns", "exec", str(state.scanner_namespace), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def state_dir_of(state: control.LabState) -> Path:
    return Path(state.state_dir)


class LoopThread:
    """An asyncio loop in a thread, running lab responders as serve.py would, so a test can block or scan."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 15) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Cancel what still runs (a responder still trickling its answer to a scanner that gave up), let it
        close its connections, then stop the loop: nothing is left for the garbage collector to find on a
        closed loop (which pytest would report against whichever test runs next)."""

        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.sleep(0.05)  # transports close on the loop's next turns
            await self.loop.shutdown_asyncgens()

        try:
            self.run(drain(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


def stop_process(proc: subprocess.Popen[str]) -> None:
    """Stop a process a test started, by its PID (it leads its own process group), and close its pipes."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        except ProcessLookupError:
            pass
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
