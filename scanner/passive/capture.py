"""Reading pcap and pcapng captures: every packet record, streamed, to a sink; damage counted, never fatal.

Written by hand with `struct` for speed: the file is read in 4 MiB chunks (never whole). Two format readers
(`_pcap_records`: classic pcap, both byte orders, micro- and nanosecond timestamps; `_pcapng_records`: SHB,
IDB, EPB, SPB and the obsolete PB, several interfaces and sections, both byte orders, other blocks skipped and
counted) only frame records; `read_capture` is the one loop that counts them, keeps the time span and hands
each to the sink. A record larger than MAX_RECORD is a corrupt header: skipped by searching forward for the
next plausible record. A file whose header is unreadable, or from which not one record could be read, raises
CaptureError with the byte offset.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from scanner.errors import CamscanError

CHUNK = 4 << 20  # bytes read from the file at a time
MAX_RECORD = 256 * 1024  # a captured packet longer than this is a corrupt header (tcpdump's maximum snaplen)
MAX_BLOCK = MAX_RECORD + 64 * 1024  # a pcapng block (packet plus options)
RESYNC_WINDOW = 4 << 20  # how far past a corrupt record to look for the next good one
EXAMPLES = 5  # offsets quoted per kind of problem

PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
SHB = 0x0A0D0D0A
BYTE_ORDER_MAGIC = 0x1A2B3C4D
IDB, PB, SPB, EPB = 1, 2, 3, 6
KNOWN_BLOCKS = frozenset({4, 5, 7, 8, 9, 10, 0x80000001, 0x00000BAD, 0x40000BAD})  # NRB ISB ... custom: skipped

Sink = Callable[[bytes, int, int, int, float], None]  # (chunk, offset, captured length, link type, time)
# One record as a format reader yields it: (chunk, offset, captured length, length on the wire, link type, time)
Record = tuple[bytes, int, int, int, int, float | None]


class CaptureError(CamscanError, ValueError):
    """A capture that cannot be read at all (not pcap or pcapng, header cut or corrupt), with the offset."""

    def __init__(self, path: str, offset: int, message: str) -> None:
        super().__init__(f"{path}: byte {offset}: {message}")
        self.offset = offset


@dataclass
class FileStats:
    """What reading one capture gave: counts, the time span, and what was skipped (with example offsets)."""

    name: str
    format: str = ""
    packets: int = 0
    first: float | None = None
    last: float | None = None
    cut_by_snaplen: int = 0  # captured shorter than on the wire
    truncated_at: int | None = None  # the file ends inside a record (offset of that record)
    skipped_bytes: int = 0  # corrupt stretches jumped over
    corrupt_at: list[int] = field(default_factory=list)
    unreadable_tail_at: int | None = None  # corrupt and no good record found after it
    unknown_blocks: int = 0
    bad_blocks: int = 0  # known pcapng blocks with impossible fields (interface id, lengths)
    link_types: set[int] = field(default_factory=set)
    decode_failures: int = 0  # packets the dissector could not take apart (should stay 0)

    end_offset: int = 0  # where reading stopped

    def problems(self) -> list[str]:
        out = []
        if self.corrupt_at:
            where = ", ".join(str(o) for o in self.corrupt_at[:EXAMPLES])
            out.append(
                f"{self.name}: {len(self.corrupt_at)} corrupt record(s) (at byte {where}); "
                f"{self.skipped_bytes} bytes skipped to the next readable record"
            )
        if self.unreadable_tail_at is not None:
            out.append(f"{self.name}: corrupt from byte {self.unreadable_tail_at} to the end; the rest was not read")
        if self.truncated_at is not None:
            out.append(f"{self.name}: the file ends inside the record at byte {self.truncated_at} (truncated file)")
        if self.bad_blocks:
            out.append(f"{self.name}: {self.bad_blocks} pcapng block(s) with impossible fields skipped")
        if self.decode_failures:
            out.append(f"{self.name}: {self.decode_failures} packet(s) could not be decoded and were skipped")
        return out


class _Stream:
    """A window on the file: `data[pos:]` is unread; `base` is the file offset of `data[0]`."""

    def __init__(self, fh: IO[bytes], data: bytes) -> None:
        self.fh = fh
        self.data = data
        self.base = 0
        self.eof = False

    def refill(self, pos: int, need: int) -> tuple[bytes, int, int]:
        """Keep `data[pos:]`, read until at least `need` bytes are there or the file ends."""
        data = self.data[pos:]
        self.base += pos
        parts = [data]
        have = len(data)
        while have < need and not self.eof:
            chunk = self.fh.read(max(CHUNK, need - have))
            if not chunk:
                self.eof = True
                break
            parts.append(chunk)
            have += len(chunk)
        self.data = b"".join(parts) if len(parts) > 1 else data
        return self.data, 0, len(self.data)


def read_capture(path: Path, sink: Sink, stats: FileStats | None = None) -> FileStats:
    """Stream every packet of a pcap or pcapng file to `sink(chunk, offset, captured length, link type, time)`.

    Raises CaptureError (with the offset) when nothing can be read: an unreadable header, or not one packet
    record; later damage is counted in the returned FileStats. Nothing a packet holds stops the reading: a
    sink that raises is counted as a decode failure."""
    stats = stats or FileStats(path.name)
    with path.open("rb") as fh:
        head = fh.read(CHUNK)
        stream = _Stream(fh, head)
        if len(head) < 4:
            raise CaptureError(path.name, 0, f"file too short ({len(head)} bytes) to be a capture")
        magic = head[:4]
        if magic in PCAP_MAGIC:
            records = _pcap_records(path.name, stream, stats)
        elif struct.unpack("<I", magic)[0] == SHB:
            records = _pcapng_records(path.name, stream, stats)
        elif magic[:2] == b"\x1f\x8b":
            raise CaptureError(path.name, 0, "a gzip file: decompress it first (gunzip)")
        else:
            raise CaptureError(path.name, 0, f"unknown magic number 0x{magic.hex()}: not a pcap or pcapng capture")
        count = cut = failures = 0
        first: float | None = None
        last: float | None = None
        try:
            for data, offset, caplen, orig, link, ts in records:
                count += 1
                if caplen < orig:
                    cut += 1
                if ts is None:  # a pcapng simple packet block has no time: that of the packet before it
                    ts = last if last is not None else 0.0
                elif first is None or last is None:
                    first = last = ts
                elif ts > last:
                    last = ts
                elif ts < first:
                    first = ts
                try:
                    sink(data, offset, caplen, link, ts)
                except Exception:  # nothing a packet holds may stop the reading
                    failures += 1
        finally:
            stats.packets += count
            stats.cut_by_snaplen += cut
            stats.decode_failures += failures
            _span(stats, first, last)
    if not count:
        if stats.corrupt_at:
            where, why = stats.corrupt_at[0], "a corrupt record here, and no readable record after it"
        elif stats.truncated_at is not None:
            where, why = stats.truncated_at, "the file ends inside the first record"
        else:
            where, why = stats.end_offset, "the capture holds no packet record"
        raise CaptureError(path.name, where, f"no packet could be read from this {stats.format} capture ({why})")
    return stats


def _span(stats: FileStats, first: float | None, last: float | None) -> None:
    if first is not None and last is not None:
        stats.first = first if stats.first is None else min(stats.first, first)
        stats.last = last if stats.last is None else max(stats.last, last)


# -- classic pcap ----------------------------------------------------------------------------------------------


def _plausible_pcap(data: bytes, q: int, unpack: Callable[[bytes, int], tuple[int, ...]], last: int) -> bool:
    if q + 16 > len(data):
        return False
    sec, frac, incl, orig = unpack(data, q)
    if incl > MAX_RECORD or orig < incl or orig > 16 * MAX_RECORD or frac >= 1_000_000_000:
        return False
    return not last or abs(sec - last) < 366 * 86400


def _pcap_records(name: str, st: _Stream, stats: FileStats) -> Iterator[Record]:
    data = st.data
    endian, scale = PCAP_MAGIC[data[:4]]
    if len(data) < 24:
        raise CaptureError(name, 0, f"pcap file header cut short ({len(data)} of 24 bytes)")
    _vmaj, _vmin, _zone, _sigfigs, _snaplen, link = struct.unpack_from(endian + "HHiIII", data, 4)
    link &= 0xFFFF  # the upper bits may carry the FCS length
    stats.format = "pcap (nanosecond)" if scale == 1e-9 else "pcap"
    stats.link_types.add(link)
    unpack = struct.Struct(endian + "IIII").unpack_from
    frac_limit = 1_000_000_000 if scale == 1e-9 else 1_000_000
    pos, n = 24, len(data)
    last_sec = 0
    while True:
        if n - pos < 16:
            data, pos, n = st.refill(pos, 16)
            if n - pos < 16:
                if n > pos:
                    stats.truncated_at = st.base + pos
                break
        sec, frac, incl, orig = unpack(data, pos)
        if incl > MAX_RECORD or frac >= frac_limit:
            data, pos, n = _resync_pcap(st, pos, stats, unpack, last_sec)
            if pos < 0:
                break
            continue
        end = pos + 16 + incl
        if end > n:
            data, pos, n = st.refill(pos, 16 + incl)
            end = pos + 16 + incl
            if end > n:
                stats.truncated_at = st.base + pos
                break
        last_sec = sec
        yield data, pos + 16, incl, orig, link, sec + frac * scale
        pos = end
    stats.end_offset = st.base + max(pos, 0)


def _resync_pcap(
    st: _Stream, pos: int, stats: FileStats, unpack: Callable[[bytes, int], tuple[int, ...]], last_sec: int
) -> tuple[bytes, int, int]:
    """Skip a corrupt record header: the next offset where two records in a row look right (or one that ends
    the file exactly). Returns (data, pos, n) with pos = -1 when none is found within RESYNC_WINDOW."""
    stats.corrupt_at.append(st.base + pos)
    data, pos, n = st.refill(pos, RESYNC_WINDOW + 2 * MAX_RECORD)
    for q in range(1, min(n, RESYNC_WINDOW)):
        if not _plausible_pcap(data, q, unpack, last_sec):
            continue
        nxt = q + 16 + unpack(data, q)[2]
        if (nxt == n and st.eof) or _plausible_pcap(data, nxt, unpack, last_sec):
            stats.skipped_bytes += q
            return data, q, n
    stats.unreadable_tail_at = st.base
    return data, -1, n


# -- pcapng -----------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Interface:
    link: int
    resolution: float = 1e-6
    offset: float = 0.0


def _idb_interface(body: bytes, endian: str) -> _Interface:
    """An Interface Description Block body (after type and length): link type, then options for if_tsresol
    (code 9) and if_tsoffset (code 14)."""
    link = struct.unpack_from(endian + "H", body, 0)[0]
    iface = _Interface(link)
    pos = 8
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(endian + "HH", body, pos)
        value = body[pos + 4 : pos + 4 + length]
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = value[0]
            iface.resolution = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -(v & 0x7F)
        elif code == 14 and length >= 8:
            iface.offset = float(struct.unpack_from(endian + "q", value, 0)[0])
        pos += 4 + ((length + 3) & ~3)
    return iface


def _pcapng_records(name: str, st: _Stream, stats: FileStats) -> Iterator[Record]:
    stats.format = "pcapng"
    data, pos, n = st.data, 0, len(st.data)
    endian = "<"
    ifaces: list[_Interface] = []
    head = struct.Struct("<II").unpack_from
    epb = struct.Struct("<IIIII").unpack_from
    u32 = struct.Struct("<I").unpack_from
    sections = 0
    while True:
        if n - pos < 12:
            data, pos, n = st.refill(pos, 12)
            if n - pos < 12:
                if n > pos:
                    stats.truncated_at = st.base + pos
                break
        btype = u32(data, pos)[0]
        if btype == SHB:
            bom = data[pos + 8 : pos + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                endian = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                endian = ">"
            else:
                if not sections:
                    raise CaptureError(name, st.base + pos + 8, "pcapng section header with a bad byte-order magic")
                data, pos, n = _resync_pcapng(st, pos, stats, endian)
                if pos < 0:
                    break
                continue
            head = struct.Struct(endian + "II").unpack_from
            epb = struct.Struct(endian + "IIIII").unpack_from
            u32 = struct.Struct(endian + "I").unpack_from
        btype, blen = head(data, pos)
        if blen < 12 or blen & 3 or blen > MAX_BLOCK:
            if not sections:
                raise CaptureError(name, st.base + pos, f"pcapng block length {blen} is impossible")
            data, pos, n = _resync_pcapng(st, pos, stats, endian)
            if pos < 0:
                break
            continue
        end = pos + blen
        if end > n:
            data, pos, n = st.refill(pos, blen)
            end = pos + blen
            if end > n:
                if btype == SHB and not sections:
                    raise CaptureError(name, st.base + pos, "pcapng section header cut short")
                stats.truncated_at = st.base + pos
                break
        if u32(data, end - 4)[0] != blen:
            if not sections:
                raise CaptureError(name, st.base + pos, "pcapng section header: trailing length differs")
            data, pos, n = _resync_pcapng(st, pos, stats, endian)
            if pos < 0:
                break
            continue
        if btype in (EPB, PB, SPB) and blen < (16 if btype == SPB else 32):
            stats.bad_blocks += 1  # shorter than its own fixed fields: nothing to read (the next block may be fine)
        elif btype == EPB:
            iface_id, hi, lo, caplen, orig = epb(data, pos + 8)
            if iface_id < len(ifaces) and caplen <= blen - 32:
                iface = ifaces[iface_id]
                yield data, pos + 28, caplen, orig, iface.link, ((hi << 32) | lo) * iface.resolution + iface.offset
            else:
                stats.bad_blocks += 1
        elif btype == SPB:
            orig = u32(data, pos + 8)[0]
            if ifaces:
                yield data, pos + 12, min(orig, blen - 16), orig, ifaces[0].link, None
            else:
                stats.bad_blocks += 1
        elif btype == IDB:
            try:
                iface = _idb_interface(data[pos + 8 : end - 4], endian)
            except struct.error:
                stats.bad_blocks += 1
                iface = _Interface(-1)
            ifaces.append(iface)
            stats.link_types.add(iface.link)
        elif btype == SHB:
            sections += 1
            ifaces = []  # interface ids are per section
        elif btype == PB:
            iface_id, _drops, hi, lo, caplen, orig = struct.unpack_from(endian + "HHIIII", data, pos + 8)
            if iface_id < len(ifaces) and caplen <= blen - 32:
                iface = ifaces[iface_id]
                yield data, pos + 28, caplen, orig, iface.link, ((hi << 32) | lo) * iface.resolution + iface.offset
            else:
                stats.bad_blocks += 1
        elif btype not in KNOWN_BLOCKS:
            stats.unknown_blocks += 1
        pos = end
    stats.end_offset = st.base + max(pos, 0)


def _resync_pcapng(st: _Stream, pos: int, stats: FileStats, endian: str) -> tuple[bytes, int, int]:
    """Skip a corrupt block: the next 4-aligned offset holding a known block type whose leading and trailing
    lengths agree. (data, pos, n), pos = -1 when none is found within RESYNC_WINDOW."""
    stats.corrupt_at.append(st.base + pos)
    data, pos, n = st.refill(pos, RESYNC_WINDOW + MAX_BLOCK)
    head = struct.Struct(endian + "II").unpack_from
    tail = struct.Struct(endian + "I").unpack_from
    for q in range(4, min(n - 12, RESYNC_WINDOW), 4):
        btype, blen = head(data, q)
        if btype not in (EPB, SPB, IDB, SHB, PB) or blen < 12 or blen & 3 or blen > MAX_BLOCK or q + blen > n:
            continue
        if tail(data, q + blen - 4)[0] == blen:
            stats.skipped_bytes += q
            return data, q, n
    stats.unreadable_tail_at = st.base
    return data, -1, n


