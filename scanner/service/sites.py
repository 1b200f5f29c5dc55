"""Sites: validation shared by the API and `camscan sites add`, and their JSON shape.

A site's targets must be local networks unless `allow_public` says the council is authorised to scan public
addresses: the same rule as `camscan scan --allow-public` (scanner.scope.check_networks), checked when the
site is saved so that a scheduled scan never fails on it at 3 a.m.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

import yaml

from scanner._data import data_dir
from scanner.scope import ScopeError, check_networks, parse_targets
from scanner.service.scheduler import ScheduleError, check_schedule, next_fire
from scanner.service.store.models import Site

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
INTERFACE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")
MAX_TARGETS = 64


class SiteError(ValueError):
    """A site field that cannot be accepted; the message starts with the field's name."""


def scan_methods() -> tuple[str, ...]:
    from scanner.backends import METHODS

    return METHODS


@lru_cache(maxsize=1)
def pack_ids() -> frozenset[str]:
    """The ids of the shipped policy packs (read from their files, without loading the rules)."""
    ids: set[str] = set()
    for path in data_dir("policies").glob("*.yaml"):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        pack = doc.get("pack") if isinstance(doc, dict) else None
        if isinstance(pack, dict) and isinstance(pack.get("id"), str):
            ids.add(pack["id"])
    return frozenset(ids)


def check_slug(slug: str) -> str:
    if not SLUG.match(slug):
        raise SiteError(f"slug: {slug!r} must be 1-63 lower-case letters, digits and dashes, starting with one")
    return slug


def check_targets(targets: list[str], allow_public: bool) -> list[str]:
    cleaned = [t.strip() for t in targets if t.strip()]
    if not cleaned:
        raise SiteError("targets: give at least one address, network (10.0.0.0/24) or range")
    if len(cleaned) > MAX_TARGETS:
        raise SiteError(f"targets: at most {MAX_TARGETS} entries")
    try:
        check_networks(parse_targets(cleaned), allow_public, allowance="set allow_public")
    except ScopeError as exc:
        raise SiteError(f"targets: {exc}") from None
    return cleaned


def check_interface(interface: str | None) -> str | None:
    if interface is not None and not INTERFACE.match(interface):
        raise SiteError(f"interface: {interface!r} is not an interface name")
    return interface


def check_methods(methods: list[str] | None) -> list[str] | None:
    if methods is None:
        return None
    unknown = sorted(set(methods) - set(scan_methods()))
    if unknown or not methods:
        raise SiteError(f"methods: unknown {unknown or '[]'}; choose from {', '.join(scan_methods())}")
    return list(dict.fromkeys(methods))


def check_packs(packs: list[str] | None) -> list[str] | None:
    if packs is None:
        return None
    unknown = sorted(set(packs) - pack_ids())
    if unknown or not packs:
        raise SiteError(f"packs: unknown {unknown or '[]'}; shipped packs are {', '.join(sorted(pack_ids()))}")
    return list(dict.fromkeys(packs))


def check_schedule_fields(schedule: str | None, tz: str) -> None:
    try:
        check_schedule(schedule, tz)
    except ScheduleError as exc:
        raise SiteError(str(exc)) from None


def first_run(site: Site, now: datetime) -> None:
    """Set the site's next run from its schedule (none without one)."""
    site.next_run_at = next_fire(site.schedule, site.timezone, now) if site.schedule else None


def site_json(site: Site) -> dict[str, Any]:
    return {
        "slug": site.slug,
        "name": site.name,
        "targets": list(site.targets),
        "interface": site.interface,
        "schedule": site.schedule,
        "tz": site.timezone,
        "methods": site.methods,
        "packs": site.packs,
        "enabled": site.enabled,
        "allow_public": site.allow_public,
        "agent": site.agent,
        "removed_after_scans": site.removed_after_scans,
        "next_run_at": site.next_run_at.isoformat() if site.next_run_at else None,
        "created_at": site.created_at.isoformat(),
        "updated_at": site.updated_at.isoformat(),
    }
