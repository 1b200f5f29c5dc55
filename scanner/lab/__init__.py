"""The simulated camera lab: personas (data) answering real protocols on a private virtual LAN.

Two modes: `netns` (root) puts each persona in its own network namespace on a bridge, so ARP, multicast
and broadcast behave as on a LAN; `loopback` (no root) gives each persona its own 127.77.0.x address and
speaks unicast only. Nothing binds to or sends on the machine's real interfaces in either mode.
"""
