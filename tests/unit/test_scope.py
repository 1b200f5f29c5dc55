"""The scope guard: what may be scanned, and when multicast is allowed."""

from __future__ import annotations

import asyncio
import time

import pytest

from scanner.scope import RateLimiter, Scope, ScopeError, parse_targets


def test_targets_as_ips_networks_and_ranges() -> None:
    s = parse_targets(["10.0.0.5", "10.0.1.0/30", "10.0.2.10-10.0.2.12", "10.0.3.1-3"])
    assert [str(ip) for ip in s] == [
        "10.0.0.5",
        "10.0.1.0",
        "10.0.1.1",
        "10.0.1.2",
        "10.0.1.3",
        "10.0.2.10",
        "10.0.2.11",
        "10.0.2.12",
        "10.0.3.1",
        "10.0.3.2",
        "10.0.3.3",
    ]


@pytest.mark.parametrize("bad", ["10.0.0.300", "example.com", "10.0.0.0/33", "10.0.0.9-10.0.0.1x"])
def test_nonsense_targets_are_refused(bad: str) -> None:
    with pytest.raises(ScopeError):
        Scope.build([bad])


@pytest.mark.parametrize("public", ["8.8.8.8", "1.1.1.0/24", "100.64.0.0/10-not"])
def test_public_addresses_need_allow_public(public: str) -> None:
    with pytest.raises(ScopeError):
        Scope.build([public])


def test_public_allowed_when_asked() -> None:
    scope = Scope.build(["8.8.8.8"], allow_public=True)
    assert "8.8.8.8" in scope and "8.8.4.4" not in scope


def test_huge_and_multicast_scopes_are_refused() -> None:
    with pytest.raises(ScopeError, match="more than"):
        Scope.build(["10.0.0.0/8"])
    with pytest.raises(ScopeError, match="not a host"):
        Scope.build(["224.0.0.0/24"])


def test_loopback_scope_never_multicasts() -> None:
    scope = Scope.build(["127.77.0.0/24"])
    assert scope.interface == "lo"
    assert not scope.multicast_allowed
    assert "127.77.0.11" in scope and "127.78.0.1" not in scope
    assert "not an ip" not in scope


def test_rate_limiter_holds_the_rate() -> None:
    async def burst() -> float:
        rl = RateLimiter(200)
        t0 = time.monotonic()
        for _ in range(100):
            await rl.acquire()
        return time.monotonic() - t0

    elapsed = asyncio.run(burst())
    assert elapsed >= (100 - 20) / 200 * 0.9  # the burst allowance is rate/10 packets


@pytest.mark.parametrize(
    ("spec", "local"),
    [("10.1.2.0/24", True), ("172.16.5.0/24", True), ("192.168.1.1", True), ("127.0.0.1", True),
     ("169.254.0.0/16", True), ("100.64.1.0/24", True), ("8.8.8.0/24", False), ("9.9.9.9", False)],
)  # fmt: skip
def test_a_site_and_the_command_line_apply_the_same_scope_rule(spec: str, local: bool) -> None:
    """`camscan scan` and a service site refuse and accept the same ranges (one rule, scope.check_networks)."""
    from scanner.service.sites import SiteError, check_targets

    if local:
        assert spec in str(Scope.build([spec]).specs) and check_targets([spec], allow_public=False) == [spec]
    else:
        with pytest.raises(ScopeError, match="public"):
            Scope.build([spec])
        with pytest.raises(SiteError, match=r"^targets: .*public.*allow_public"):
            check_targets([spec], allow_public=False)
    assert check_targets([spec], allow_public=True) == [spec]


@pytest.mark.parametrize("spec", ["240.0.0.0/24", "255.255.255.255", "224.0.0.251", "0.0.0.0"])
def test_reserved_multicast_and_unspecified_are_refused_everywhere(spec: str) -> None:
    from scanner.service.sites import SiteError, check_targets

    with pytest.raises(ScopeError, match="not a host"):
        Scope.build([spec], allow_public=True)
    with pytest.raises(SiteError, match=r"^targets: .*not a host"):
        check_targets([spec], allow_public=True)
