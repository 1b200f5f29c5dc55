"""The one reader of Evidence as JSON Lines, for `camscan identify` and `camscan report --evidence`.

One host per line (the contract of docs/evidence.md):

    {"id": "h1", "ip": "10.0.0.5", "mac": "44:19:b6:00:00:01",
     "evidence": [{"key": "http.server", "value": "App-webs/", "source": "my-tool"}]}

`id` (a string or an integer) and the `evidence` list are required; `ip`, `mac` and each item's `source` are
optional. A line that is not valid JSON, lacks `id` or `evidence`, has an item without string `key` and
`value`, has more than MAX_EVIDENCE items or is longer than MAX_LINE bytes is refused whole with a reason
(LineError): `identify` writes it as the line's `error`, `report` records it and skips the line. Blank lines
are not hosts. The stream is read a line at a time, so memory stays flat however many hosts there are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from scanner.model import Evidence, Host, cap_value, normalise_mac

MAX_LINE = 16 * 1024 * 1024  # one host's evidence; longer lines are refused, not loaded
MAX_EVIDENCE = 10_000  # items per host


class LineError(ValueError):
    """A line that is not a usable host, with the reason and the host's id when it could be read."""

    def __init__(self, reason: str, host_id: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.host_id = host_id


@dataclass(slots=True)
class HostLine:
    """One host as the line gives it: `items` are (key, value, source) in order; nothing is capped here."""

    id: str | int
    items: list[tuple[str, str, str | None]]
    ip: str | None = None
    mac: str | None = None

    def pairs(self) -> Iterator[tuple[str, str]]:
        return ((k, v) for k, v, _ in self.items)


def read_lines(stream: IO[str], limit: int = MAX_LINE) -> Iterator[str | None]:
    """Lines of a text stream; None for a line longer than `limit` (its rest is skipped, never held)."""
    while True:
        line = stream.readline(limit)
        if not line:
            return
        if len(line) >= limit and not line.endswith("\n"):
            while True:  # drain the rest of the over-long line in bounded chunks
                rest = stream.readline(limit)
                if not rest or rest.endswith("\n"):
                    break
            yield None
            continue
        yield line


def host_lines(stream: IO[str]) -> Iterator[tuple[int, str | None]]:
    """(line number, line) for every line that is not blank; the line is None when it was too long."""
    for lineno, line in enumerate(read_lines(stream), 1):
        if line is None or line.strip():
            yield lineno, line


def parse_host_line(line: str | None) -> HostLine:
    """One host from one line (None: a line that was too long); LineError says why it is not one."""
    if line is None:
        raise LineError(f"line longer than {MAX_LINE} bytes")
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError, or an integer of over 4300 digits
        raise LineError(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise LineError("a host line must be a JSON object")
    if "id" not in doc:
        raise LineError("missing 'id'")
    host_id = doc["id"]
    if not isinstance(host_id, (str, int)) or isinstance(host_id, bool):
        raise LineError("'id' must be a string or an integer")
    evidence = doc.get("evidence")
    if not isinstance(evidence, list):
        raise LineError("missing 'evidence' list", host_id)
    if len(evidence) > MAX_EVIDENCE:
        raise LineError(f"more than {MAX_EVIDENCE} evidence items", host_id)
    items: list[tuple[str, str, str | None]] = []
    for i, item in enumerate(evidence):
        if not isinstance(item, dict):
            raise LineError(f"evidence[{i}] must be an object with 'key' and 'value'", host_id)
        key, value = item.get("key"), item.get("value")
        if not isinstance(key, str) or not isinstance(value, str):
            raise LineError(f"evidence[{i}] needs string 'key' and 'value'", host_id)
        source = item.get("source")
        items.append((key, value, source if isinstance(source, str) else None))
    ip, mac = doc.get("ip"), doc.get("mac")
    return HostLine(
        id=host_id,
        items=items,
        ip=ip if isinstance(ip, str) else None,
        mac=mac if isinstance(mac, str) else None,
    )


def read_hosts(stream: IO[str], name: str, errors: list[str]) -> Iterator[Host]:
    """Hosts for a report, from Evidence lines. A line refused is skipped and named in `errors` with its line
    number and reason, exactly as `camscan identify` would refuse it; values are capped as every Evidence is."""
    for lineno, line in host_lines(stream):
        try:
            h = parse_host_line(line)
        except LineError as exc:
            errors.append(f"{name}:{lineno}: {exc.reason}; line skipped")
            continue
        items = []
        for i, (k, v, src) in enumerate(h.items):
            if not k:  # an Evidence key is never empty (scanner/model.py); the rest of the host still counts
                errors.append(f"{name}:{lineno}: evidence[{i}] has an empty 'key'; item skipped")
                continue
            items.append(Evidence(key=k[:128], value=cap_value(k, v), source=src))
        yield Host(
            id=str(h.id)[:256],
            ip=h.ip[:64] if h.ip is not None else None,
            mac=normalise_mac(h.mac) if h.mac is not None else None,
            evidence=items,
        )
