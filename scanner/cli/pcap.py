"""`camscan pcap`: the passive audit of packet captures (no packet sent)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scanner.cli.common import ReportOptions, note, report_options
from scanner.cli.render import print_summary, safe
from scanner.errors import InputError


def register(app: typer.Typer) -> None:
    app.command()(pcap)


@report_options
def pcap(
    captures: Annotated[
        list[Path],
        typer.Argument(help="Capture files (pcap or pcapng, from tcpdump, Wireshark, a mirror port).", dir_okay=False),
    ],
    *,
    report: ReportOptions,
) -> None:
    """Passive audit: find and identify the cameras in packet captures, sending nothing, and write the report.

    camscan pcap mirror-port.pcapng --site "Town Hall" --json report.json --html report.html

    Reads ARP, DHCP, mDNS, WS-Discovery, SSDP, SADP and DHIP messages, HTTP and RTSP answers, TLS certificates
    sent in clear and service banners. The report lists each capture with its SHA-256 and time span, and what
    could not be decoded. A capture from which not one packet can be read is an error (exit 2) naming the file
    and the byte offset; when some captures are readable, the others are listed in the report's errors.
    """
    from scanner.passive import analyse_captures
    from scanner.report.build import Run, build_report, file_ref

    for path in captures:
        if not path.is_file():
            raise InputError(f"{path}: no such file")
    knowledge = report.knowledge()
    run = Run(methods=["passive-pcap"])
    try:
        result = analyse_captures(captures)
    except OSError as exc:
        raise InputError(f"cannot read a capture: {exc}") from None
    run.inputs = [file_ref(path, "pcap") for path in captures]
    run.errors = result.errors
    run.limitations = [
        "Passive audit of packet captures: camscan sent no packet; a device that said nothing while the capture "
        "ran is not in this report.",
        *result.limitations,
    ]
    rep = build_report(result.hosts, knowledge, report.audit(), run)
    packets = sum(f.packets for f in result.files)
    note(f"{packets} packets read from {len(result.files)} capture(s)")
    for line in result.errors:
        note(safe(f"warning: {line}"))
    print_summary(rep)
    report.write(rep)
