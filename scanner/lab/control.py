"""Bring a lab up and down: namespaces, links, persona processes, and a state file to find them again.

netns mode (root): one namespace holds a bridge (`br0`, STP and multicast snooping off, so it floods like a
dumb switch); each persona gets its own namespace with a veth `lab0` carrying its MAC and 10.77.0.x/24; a
`scanner` namespace on the same bridge (10.77.0.2) is where scans run (`camscan lab exec -- CMD`). The veths
are created directly between namespaces, so nothing appears in the root namespace and no address of the
lab exists outside it. Every namespace is named `camscan-<lab id>-<role>`.

loopback mode (no root needed): each persona binds its own 127.77.0.x address; unicast only (no ARP, no
MACs, no multicast discovery, no mDNS); without root, ports below 1024 are shifted up by 10000.

A lab that crashed is found and removed at the next `up` (or by `down --all`): its namespaces have no live
persona process left, or the state file names it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scanner.errors import CamscanError
from scanner.lab.persona import PERSONA_DIR, Persona, persona_files

PREFIX = "camscan-"
SUBNET = "10.77.0.0/24"
SCANNER_IP = "10.77.0.2"
SCANNER_MAC = "02:ca:35:ca:00:02"  # locally administered: no maker owns it
READY_TIMEOUT = 30.0
STALE_AFTER = 60.0  # a lab with no persona process, older than this, is a crashed one


class LabError(CamscanError, RuntimeError):
    pass


@dataclass
class PersonaProcess:
    id: str
    name: str
    ip: str
    mac: str | None
    namespace: str | None
    pid: int
    log: str


@dataclass
class LabState:
    lab_id: str
    mode: str
    created_at: float
    state_dir: str
    personas_dir: str
    namespaces: list[str] = field(default_factory=list)
    scanner_namespace: str | None = None
    scanner_ip: str | None = None
    port_offset: int = 0
    processes: list[PersonaProcess] = field(default_factory=list)

    def save(self) -> None:
        path = Path(self.state_dir) / "lab.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, state_dir: Path) -> LabState | None:
        path = state_dir / "lab.json"
        if not path.exists():
            return None
        try:
            doc = json.loads(path.read_text())
            doc["processes"] = [PersonaProcess(**p) for p in doc.get("processes", [])]
            return cls(**doc)
        except (json.JSONDecodeError, TypeError):
            return None


def default_state_dir() -> Path:
    env = os.environ.get("CAMSCAN_LAB_STATE")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/run/camscan")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "camscan" if runtime else Path(f"/tmp/camscan-{os.getuid()}")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def ip_batch(commands: list[str], namespace: str | None = None) -> None:
    """Run many `ip` commands in one process (`ip [-n NS] -batch -`)."""
    argv = ["ip", *(["-n", namespace] if namespace else []), "-batch", "-"]
    proc = subprocess.run(argv, input="\n".join(commands) + "\n", capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed: {proc.stderr.strip()[-500:]}")


def list_namespaces() -> list[str]:
    out = ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def namespace_pids(ns: str) -> list[int]:
    out = ip("netns", "pids", ns, check=False).stdout
    return [int(x) for x in out.split() if x.isdigit()]


def _is_persona_process(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"scanner.lab.serve" in cmdline


def _stop_processes(pids: list[int], grace: float = 3.0) -> None:
    live = [p for p in pids if _is_persona_process(p)]
    for pid in live:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)  # each persona leads its own process group
    deadline = time.monotonic() + grace
    while live and time.monotonic() < deadline:
        live = [p for p in live if _is_persona_process(p) and not _reap(p)]
        time.sleep(0.05)
    for pid in live:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        _reap(pid)


def _reap(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:
        return not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def _lab_groups() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for ns in list_namespaces():
        if ns.startswith(PREFIX) and ns.count("-") >= 2:
            lab_id = ns[len(PREFIX) :].split("-", 1)[0]
            groups.setdefault(lab_id, []).append(ns)
    return groups


def _age(lab_id: str) -> float:
    """Seconds since a lab was made: its id starts with its creation time (hex seconds)."""
    try:
        return time.time() - int(lab_id[:8], 16)
    except ValueError:
        return float("inf")


def remove_stale(keep: str | None = None, everything: bool = False) -> list[str]:
    """Delete namespaces of labs with no live persona process (all camscan labs if `everything`)."""
    removed: list[str] = []
    for lab_id, namespaces in _lab_groups().items():
        if lab_id == keep:
            continue
        pids = [p for ns in namespaces for p in namespace_pids(ns)]
        if pids and not everything:
            continue
        if not everything and _age(lab_id) < STALE_AFTER:  # maybe a lab that is being built right now
            continue
        _stop_processes(pids)
        for ns in namespaces:
            ip("netns", "del", ns, check=False)
            removed.append(ns)
    return removed


def down(state_dir: Path | None = None, everything: bool = False) -> list[str]:
    """Stop the lab of `state_dir` (processes, namespaces, state); with `everything`, every camscan lab."""
    state_dir = state_dir or default_state_dir()
    state = LabState.load(state_dir)
    removed: list[str] = []
    if state is not None:
        _stop_processes([p.pid for p in state.processes])
        for ns in state.namespaces:
            if ns in list_namespaces():
                ip("netns", "del", ns, check=False)
                removed.append(ns)
        (state_dir / "lab.json").unlink(missing_ok=True)
        shutil.rmtree(state_dir / "logs", ignore_errors=True)
    if os.geteuid() == 0 and shutil.which("ip"):
        removed += remove_stale(everything=everything)
    return removed


def up(
    mode: str = "netns",
    personas_dir: Path | None = None,
    state_dir: Path | None = None,
    only: list[str] | None = None,
) -> LabState:
    """Start a lab; an earlier lab of the same state directory, or a crashed one, is removed first."""
    state_dir = state_dir or default_state_dir()
    personas_dir = personas_dir or PERSONA_DIR
    found = persona_files(personas_dir)
    if only:
        found = [(f, p) for f, p in found if p.id in only]
    personas = [p for _, p in found]
    if not personas:
        raise LabError(f"no personas in {personas_dir}")
    if mode not in ("netns", "loopback"):
        raise LabError(f"mode must be netns or loopback, not {mode!r}")
    if mode == "netns" and os.geteuid() != 0:
        raise LabError("netns mode needs root (network namespaces); use --mode loopback")
    if mode == "netns" and not shutil.which("ip"):
        raise LabError("netns mode needs the `ip` command (Debian: apt-get install iproute2)")
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    down(state_dir)
    lab_id = f"{int(time.time()):08x}{os.urandom(2).hex()}"  # creation time + random: unique, and it dates the lab
    state = LabState(
        lab_id=lab_id, mode=mode, created_at=time.time(), state_dir=str(state_dir), personas_dir=str(personas_dir)
    )
    logs = state_dir / "logs"
    logs.mkdir(exist_ok=True)
    try:
        if mode == "netns":
            _build_netns(state, personas)
        else:
            state.port_offset = 0 if os.geteuid() == 0 else 10000
        state.save()
        _start_personas(state, found, logs)
        state.save()
    except BaseException:
        state.save()
        down(state_dir)
        raise
    return state


def _build_netns(state: LabState, personas: list[Persona]) -> None:
    base = f"{PREFIX}{state.lab_id}"
    sw, scan = f"{base}-sw", f"{base}-scanner"
    state.namespaces = [sw, scan] + [f"{base}-{p.id}"[:60] for p in personas]
    state.scanner_namespace, state.scanner_ip = scan, SCANNER_IP
    ip_batch([f"netns add {ns}" for ns in state.namespaces])
    hosts: list[tuple[str, str, str, str]] = [(scan, SCANNER_MAC, SCANNER_IP, "s0")]
    hosts += [(ns, p.mac, p.ip, f"p{i}") for i, (ns, p) in enumerate(zip(state.namespaces[2:], personas, strict=True))]
    switch = [
        "link set lo up",
        "link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
        "link set br0 up",
    ]
    for ns, _mac, _addr, port in hosts:  # each veth is born with one end in the switch, the other in the host
        switch += [
            f"link add {port} type veth peer name lab0 netns {ns}",
            f"link set {port} master br0",
            f"link set {port} up",
        ]
    ip_batch(switch, sw)
    for ns, mac, addr, _port in hosts:
        ip_batch(
            ["link set lo up", f"link set lab0 address {mac}", f"addr add {addr}/24 dev lab0", "link set lab0 up"], ns
        )


def _start_personas(state: LabState, found: list[tuple[Path, Persona]], logs: Path) -> None:
    procs: list[tuple[PersonaProcess, int, Path]] = []
    for i, (path, p) in enumerate(found):
        ready = logs / f"{p.id}.ready"
        ready.unlink(missing_ok=True)
        log_path = logs / f"{p.id}.log"
        if state.mode == "netns":
            ns = state.namespaces[2 + i]
            addr, iface = p.ip, "lab0"
            argv = ["ip", "netns", "exec", ns, sys.executable]
        else:
            ns, addr, iface = None, p.loopback_ip(), ""
            argv = [sys.executable]
        argv += [
            "-m",
            "scanner.lab.serve",
            "--persona",
            str(path),
            "--ip",
            addr,
            "--ready",
            str(ready),
            "--port-offset",
            str(state.port_offset),
            "--runtime-dir",
            str(logs / f"{p.id}.run"),
        ]
        if iface:
            argv += ["--iface", iface]
        pid = _spawn(argv, log_path)
        entry = PersonaProcess(p.id, p.name, addr, p.mac if state.mode == "netns" else None, ns, pid, str(log_path))
        state.processes.append(entry)
        procs.append((entry, pid, ready))
    deadline = time.monotonic() + READY_TIMEOUT
    for entry, pid, ready in procs:
        while not ready.exists():
            if _exited(pid):
                tail = Path(entry.log).read_text(errors="replace")[-1500:]
                raise LabError(f"persona {entry.id} exited:\n{tail}")
            if time.monotonic() > deadline:
                raise LabError(f"persona {entry.id} not ready after {READY_TIMEOUT:.0f} s (log: {entry.log})")
            time.sleep(0.02)


def _spawn(argv: list[str], log_path: Path) -> int:
    """Start a persona process in its own session (so it outlives `lab up` and is stopped by process
    group), stdout and stderr to its log, stdin from /dev/null."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawnp(argv[0], argv, _child_env(), file_actions=actions, setsid=True)


def _exited(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not Path(f"/proc/{pid}").exists()
    return done == pid


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def status(state_dir: Path | None = None) -> LabState | None:
    return LabState.load(state_dir or default_state_dir())


def alive(pid: int) -> bool:
    return _is_persona_process(pid) and not _zombie(pid)


def exec_in_scanner(state: LabState, command: list[str]) -> int:
    if state.mode != "netns" or not state.scanner_namespace:
        raise LabError("a loopback lab has no scanner namespace: run the command directly")
    return subprocess.call(["ip", "netns", "exec", state.scanner_namespace, *command])
