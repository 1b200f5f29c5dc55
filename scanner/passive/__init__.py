"""Passive audit: a packet capture in, the same Evidence the active scan gives out; no packet is sent."""

from scanner.passive.pcap import CaptureError, PassiveResult, analyse_captures, read_capture

__all__ = ["CaptureError", "PassiveResult", "analyse_captures", "read_capture"]
