#!/usr/bin/env python3
"""Accuracy of `camscan identify` on a held-out corpus of real-world Evidence.

Runs `python -m scanner identify` on JSON Lines corpora (default: the ten held-out sets in
tests/fixtures/eval/, heldout.jsonl, longtail-heldout.jsonl, hikdahua-heldout.jsonl,
relabel-longtail-heldout.jsonl, nuclei-heldout.jsonl, nmap-heldout.jsonl, oem-heldout.jsonl, sip-heldout.jsonl,
snmp-heldout.jsonl and whatweb-heldout.jsonl, each scored on its
own), compares each answer with the line's `expect` ({"manufacturer", "device_type", optional "brand"}) and prints:

- the headline numbers: maker accuracy (the maker exactly as expected); "right" (the same, except that a
  non-camera given no maker at all also counts as right: naming no maker is never a wrong answer for a
  device the audit does not care about); Hikvision/Dahua recall; wrong makers (a maker named that is not
  the expected one: worse than none); false flags (a non-camera given a covered maker it is not made by);
  and non-cameras given a camera maker they are not made by, or a camera device type;
- accuracy by Evidence key family and by expected maker;
- every miss: id, expected, got, and the rules that fired.

No assertion: figures only.

    python benchmarks/eval_identify.py [corpus.jsonl ...] [--json]
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EVAL_DIR = ROOT / "tests" / "fixtures" / "eval"
DEFAULTS = [
    EVAL_DIR / "heldout.jsonl",
    EVAL_DIR / "longtail-heldout.jsonl",
    EVAL_DIR / "hikdahua-heldout.jsonl",
    EVAL_DIR / "relabel-longtail-heldout.jsonl",
    EVAL_DIR / "nuclei-heldout.jsonl",
    EVAL_DIR / "nmap-heldout.jsonl",
    EVAL_DIR / "oem-heldout.jsonl",
    EVAL_DIR / "sip-heldout.jsonl",
    EVAL_DIR / "snmp-heldout.jsonl",
    EVAL_DIR / "product-lines-heldout.jsonl",
    EVAL_DIR / "whatweb-heldout.jsonl",
    EVAL_DIR / "sysobjectid-heldout.jsonl",
    EVAL_DIR / "onvif-threads-heldout.jsonl",
    EVAL_DIR / "fingerprinthub-heldout.jsonl",
    EVAL_DIR / "ehole-heldout.jsonl",
]
CAMERA_TYPES = {"camera", "recorder", "encoder", "intercom", "access_control"}
HIKDAHUA = {"Hikvision", "Dahua"}


def load_makers() -> tuple[dict[str, str], set[str]]:
    """(maker -> kind, covered makers) from fingerprints/makers.yaml."""
    data = yaml.safe_load((ROOT / "fingerprints" / "makers.yaml").read_text(encoding="utf-8"))
    kinds = {m["name"]: m.get("kind", "other") for m in data["makers"]}
    return kinds, {m["name"] for m in data["makers"] if m.get("covered")}


def family(key: str) -> str:
    """http.* and rtsp.* keys are reported one by one; other dotted keys by their prefix (onvif, wsd, nmap...)."""
    if key.startswith(("http.", "rtsp.")) or "." not in key:
        return key
    return key.split(".", 1)[0]


def run_identify(paths: list[Path]) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "scanner", "identify", *map(str, paths)], capture_output=True, text=True, cwd=ROOT
    )
    if proc.returncode != 0:
        raise SystemExit(f"camscan identify failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def pct(a: int, b: int) -> str:
    return f"{a}/{b} ({100.0 * a / b:.1f}%)" if b else "0/0 (-)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", nargs="*", type=Path, default=DEFAULTS)
    ap.add_argument("--json", action="store_true", help="also print the per-host results as JSON Lines")
    args = ap.parse_args()
    for n, path in enumerate(args.corpus):
        if n:
            print()
            print("=" * 100)
            print()
        report(path, args.json)


def report(path: Path, as_json: bool) -> None:
    hosts = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    got = run_identify([path])
    by_id = {g.get("id"): g for g in got}
    kinds, covered = load_makers()

    maker_ok = right = 0
    wrong_makers: list[tuple[dict, dict]] = []
    false_flags: list[tuple[dict, dict]] = []
    type_ok = type_n = 0
    brand_ok = brand_n = 0
    hd_n = hd_found = 0
    noncam_n = noncam_bad = 0
    per_family: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    per_maker: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    misses, noncam_flags, type_misses, unknown_makers = [], [], [], set()

    for h in hosts:
        exp = h["expect"]
        g = by_id.get(h["id"], {})
        em, gm = exp.get("manufacturer"), g.get("manufacturer")
        if em and em not in kinds:
            unknown_makers.add(em)
        ok = em == gm
        maker_ok += ok
        if gm is not None and gm != em:
            wrong_makers.append((h, g))
        fams = sorted({family(e["key"]) for e in h["evidence"]})
        for f in fams:
            per_family[f][0] += ok
            per_family[f][1] += 1
        label = em or "(none)"
        per_maker[label][0] += ok
        per_maker[label][1] += 1
        if exp.get("device_type") is not None:
            type_n += 1
            type_ok += exp["device_type"] == g.get("device_type")
            if exp["device_type"] != g.get("device_type"):
                type_misses.append((h, g))
        if exp.get("brand"):
            brand_n += 1
            brand_ok += exp["brand"] == g.get("brand")
        if em in HIKDAHUA:
            hd_n += 1
            hd_found += gm == em
        is_noncam = h.get("category") == "non_camera" or (
            h.get("category") is None and exp.get("device_type") not in CAMERA_TYPES and kinds.get(em) != "camera"
        )
        right += ok or (is_noncam and gm is None)
        if is_noncam:
            noncam_n += 1
            bad = (gm is not None and gm != em and kinds.get(gm) == "camera") or g.get("device_type") in CAMERA_TYPES
            if bad:
                noncam_bad += 1
                noncam_flags.append((h, g))
            if gm in covered and gm != em:
                false_flags.append((h, g))
        if not ok:
            misses.append((h, g, fams))

    n = len(hosts)
    print(f"camscan identify on {path}: {n} hosts, {sum(1 for h in hosts if h.get('category') == 'camera')} cameras")
    print()
    print("HEADLINE")
    print(f"  maker accuracy:                          {pct(maker_ok, n)}")
    print(f"  right (non-camera with no maker = right): {pct(right, n)}")
    print(f"  Hikvision/Dahua recall:                  {pct(hd_found, hd_n)}")
    print(f"  wrong makers (a maker, not the expected): {len(wrong_makers)}")
    print(f"  false flags (non-camera, covered maker): {len(false_flags)} of {noncam_n}")
    print(f"  non-cameras given a camera maker/type:   {noncam_bad} of {noncam_n}")
    print(f"  (device_type accuracy where expected:    {pct(type_ok, type_n)}; brand: {pct(brand_ok, brand_n)})")
    if unknown_makers:
        print(f"  expected makers missing from makers.yaml: {', '.join(sorted(unknown_makers))}")
    print()
    print("BY KEY FAMILY (hosts carrying that family; maker right)")
    for f, (a, b) in sorted(per_family.items(), key=lambda kv: (-kv[1][1], kv[0])):
        print(f"  {f:<24} {pct(a, b)}")
    print()
    print("BY EXPECTED MAKER")
    for m, (a, b) in sorted(per_maker.items(), key=lambda kv: (kv[1][0] / kv[1][1], kv[0])):
        print(f"  {m:<24} {pct(a, b)}")
    print()
    print(f"MAKER MISSES ({len(misses)})")
    for h, g, _fams in misses:
        ev = "; ".join(f"{e['key']}={e['value'][:90]!r}" for e in h["evidence"][:6])
        more = f" (+{len(h['evidence']) - 6} more)" if len(h["evidence"]) > 6 else ""
        print(
            f"- {h['id']}: expected {h['expect'].get('manufacturer')!r}/{h['expect'].get('device_type')!r}, "
            f"got {g.get('manufacturer')!r}/{g.get('device_type')!r} conf={g.get('confidence')} "
            f"matched={g.get('matched')}"
        )
        print(f"    evidence: {ev}{more}")
        if h.get("note"):
            print(f"    note: {h['note']}")
    print()
    print(f"WRONG MAKERS ({len(wrong_makers)})")
    for h, g in wrong_makers:
        print(
            f"- {h['id']}: expected {h['expect'].get('manufacturer')!r}, got {g.get('manufacturer')!r} "
            f"matched={g.get('matched')}"
        )
    print()
    print(f"FALSE FLAGS ({len(false_flags)})")
    for h, g in false_flags:
        print(f"- {h['id']}: got {g.get('manufacturer')!r} matched={g.get('matched')}")
    print()
    print(f"NON-CAMERAS FLAGGED AS CAMERA MAKER/TYPE ({len(noncam_flags)})")
    for h, g in noncam_flags:
        print(f"- {h['id']}: got {g.get('manufacturer')!r}/{g.get('device_type')!r} matched={g.get('matched')}")
    print()
    print(f"DEVICE TYPE MISSES ({len(type_misses)})")
    for h, g in type_misses:
        print(
            f"- {h['id']}: expected {h['expect'].get('device_type')!r}, got {g.get('device_type')!r} "
            f"(maker {g.get('manufacturer')!r}) matched={g.get('matched')}"
        )
    if as_json:
        print()
        for g in got:
            print(json.dumps(g))


if __name__ == "__main__":
    main()
