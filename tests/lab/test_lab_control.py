"""The lab itself: every persona up in its namespace, nothing in the root namespace, teardown complete
(also after a crash), loopback mode without namespaces."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from scanner.lab import control
from scanner.lab.persona import load_personas
from tests.lab.conftest import in_scanner, needs_netns


def root_links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout


def root_addresses() -> str:
    return subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout


def test_personas_are_valid_and_varied() -> None:
    personas = load_personas()
    assert len(personas) >= 14
    kinds = {p.expect.device_type for p in personas}
    assert {"camera", "recorder", "other"} <= kinds
    assert any(p.hostile.entity_bomb or p.hostile.oversize_wsd for p in personas)


@needs_netns
def test_every_persona_runs_in_its_own_namespace(lab: control.LabState) -> None:
    assert len(lab.processes) == len(load_personas())
    namespaces = control.list_namespaces()
    for p in lab.processes:
        assert p.namespace in namespaces
        assert control.alive(p.pid), p.id
        assert p.pid in control.namespace_pids(str(p.namespace))


@needs_netns
def test_nothing_of_the_lab_is_in_the_root_namespace(lab: control.LabState) -> None:
    assert "10.77.0." not in root_addresses()
    links = root_links()
    assert " lab0" not in links and "br0" not in links


@needs_netns
def test_the_scanner_namespace_reaches_personas_by_arp(lab: control.LabState) -> None:
    target = lab.processes[0]
    poke = f"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'', ('{target.ip}', 9))"
    proc = in_scanner(lab, sys.executable, "-c", poke + "; import time; time.sleep(0.5)")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    neigh = in_scanner(lab, "ip", "neigh", "show", target.ip).stdout
    assert str(target.mac) in neigh


def _mini_persona_dir(tmp: Path) -> Path:
    d = tmp / "personas"
    d.mkdir()
    src = next(p for p in sorted(control.PERSONA_DIR.glob("*.yaml")) if "hp" in p.name or "printer" in p.name)
    (d / src.name).write_text(src.read_text())
    return d


@needs_netns
def test_teardown_removes_everything_even_after_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    personas = _mini_persona_dir(tmp_path)
    state_a = tmp_path / "a"
    lab = control.up("netns", personas, state_dir=state_a)
    crashed = list(lab.namespaces)
    pids = [p.pid for p in lab.processes]
    # a crash: the state file is lost and nobody ran `lab down`; the persona is killed outright
    (state_a / "lab.json").unlink()
    for pid in pids:
        os.killpg(pid, signal.SIGKILL)
    time.sleep(0.2)
    assert set(crashed) <= set(control.list_namespaces())
    state_b = tmp_path / "b"
    young = control.up("netns", personas, state_dir=state_b)  # a crashed lab this young may be one being built
    assert set(crashed) <= set(control.list_namespaces())
    control.down(state_b)
    monkeypatch.setattr(control, "STALE_AFTER", 0.0)  # ... but once it is old, the next start cleans it
    lab2 = control.up("netns", personas, state_dir=state_b)
    try:
        assert not set(crashed) & set(control.list_namespaces())
    finally:
        control.down(state_b)
    assert not set(lab2.namespaces) & set(control.list_namespaces())
    assert not set(young.namespaces) & set(control.list_namespaces())
    assert not any(control.alive(p.pid) for p in lab2.processes)
    assert (
        "veth"
        not in subprocess.run(
            ["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True, check=True
        ).stdout
    )


@needs_netns
def test_a_second_up_replaces_the_first(tmp_path: Path) -> None:
    personas = _mini_persona_dir(tmp_path)
    first = control.up("netns", personas, state_dir=tmp_path)
    control.up("netns", personas, state_dir=tmp_path)
    try:
        assert not set(first.namespaces) & set(control.list_namespaces())
        assert not any(control.alive(p.pid) for p in first.processes)
    finally:
        control.down(tmp_path)


def test_loopback_mode_serves_on_127_77(tmp_path: Path) -> None:
    personas = _mini_persona_dir(tmp_path)
    lab = control.up("loopback", personas, state_dir=tmp_path)
    try:
        p = lab.processes[0]
        assert p.ip.startswith("127.77.0.") and p.namespace is None and p.mac is None
        port = 80 + lab.port_offset
        with urllib.request.urlopen(f"http://{p.ip}:{port}/", timeout=5) as resp:
            assert resp.status in (200, 301, 302)
    except urllib.error.HTTPError as exc:  # a 401 or a redirect target is still an answer
        assert exc.code in (301, 302, 401, 404)
    finally:
        control.down(tmp_path)
    assert not any(control.alive(p.pid) for p in lab.processes)


def test_netns_mode_refuses_without_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(control.LabError, match="needs root"):
        control.up("netns", state_dir=tmp_path)


def test_a_killed_persona_leaves_no_key_behind(tmp_path: Path) -> None:
    """A persona's TLS key lives under the lab's state directory, which `lab down` removes: a persona killed
    with SIGKILL (no chance to clean up) leaves nothing in /tmp or anywhere else."""
    personas = tmp_path / "personas"
    personas.mkdir()
    src = control.PERSONA_DIR / "axis-m1065.yaml"  # serves HTTPS: a key and a certificate are made at start
    (personas / src.name).write_text(src.read_text())
    state = tmp_path / "state"
    before = set(Path("/tmp").glob("camscan-lab-*"))
    lab = control.up("loopback", personas, state_dir=state)
    try:
        runtime = state / "logs" / f"{lab.processes[0].id}.run"
        assert (runtime / "key.pem").is_file()
        assert runtime.stat().st_mode & 0o077 == 0  # private to the persona's user
        assert set(Path("/tmp").glob("camscan-lab-*")) == before
        os.killpg(lab.processes[0].pid, signal.SIGKILL)
    finally:
        control.down(state)
    assert not runtime.exists()
    assert set(Path("/tmp").glob("camscan-lab-*")) == before
