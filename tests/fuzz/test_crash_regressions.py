"""Every crash the fuzzers found, kept as a fixture (tests/fuzz/crashes/<target>/, minimised by libFuzzer) and
replayed here through its target's oracle; then, per crash, what the fixed parser now does with it. The seed
corpus is replayed too, so the oracles run on every real answer even where atheris is not installed."""

from __future__ import annotations

import importlib
import io
from pathlib import Path

import pytest

from scanner.discovery import dhip, mdns, nmap, sadp
from scanner.evidence_lines import LineError, parse_host_line, read_hosts
from scanner.fingerprint.rules import RuleError, load_ruleset
from scanner.passive import Analyzer, CaptureError, read_capture
from scanner.policy.packs import PackError, load_pack
from tests.fuzz.contract import CORPUS, CRASHES, crash_files
from tests.fuzz.run import TARGETS

CASES = [(target, path) for target in TARGETS for path in crash_files(target)]


def test_every_crash_directory_is_a_target() -> None:
    assert {d.name for d in CRASHES.iterdir() if d.is_dir()} <= set(TARGETS)


@pytest.mark.parametrize(("target", "path"), CASES, ids=[f"{t}/{p.name}" for t, p in CASES])
def test_crash_fixture_no_longer_crashes(target: str, path: Path) -> None:
    importlib.import_module(f"tests.fuzz.fuzz_{target}").check(path.read_bytes())


SEEDS = [(target, path) for target in TARGETS for path in sorted((CORPUS / target).iterdir())]


@pytest.mark.parametrize("target", TARGETS)
def test_seed_corpus_obeys_the_contract(target: str) -> None:
    check = importlib.import_module(f"tests.fuzz.fuzz_{target}").check
    seeds = [p for t, p in SEEDS if t == target]
    assert seeds, f"no seeds for {target}: run python -m tests.fuzz.make_corpus"
    for path in seeds:
        check(path.read_bytes())


def crash(target: str, name: str) -> bytes:
    return (CRASHES / target / name).read_bytes()


# -- one test per crash: what the parser does now -----------------------------------------------------------------


def test_sadp_reply_naming_an_unknown_encoding_gives_nothing() -> None:
    # found by fuzz_sadp_dhip: `<?xml version="" encoding="U"?>` made expat ask Python for codec "U";
    # the LookupError escaped parse_probe_match
    data = crash("sadp_dhip", "sadp-unknown-xml-encoding.xml")
    assert sadp.parse_probe_match(data) == []
    good = b'<?xml version="1.0" encoding="WTF-8"?><ProbeMatch><DeviceType>30023</DeviceType></ProbeMatch>'
    assert sadp.parse_probe_match(good) == []


def test_dhip_field_name_too_long_for_a_key_is_skipped() -> None:
    # found by fuzz_sadp_dhip: a deviceInfo name whose Evidence key passed 128 characters made Evidence() raise
    for name in ("dhip-field-name-over-key-length.bin", "dhip-field-name-over-key-length-bytes.bin"):
        items = dhip.parse_reply(crash("sadp_dhip", name))
        assert all(len(e.key) <= 128 for e in items)
    long_name = "Device" + "X" * 200
    reply = (
        b"\x20\x00\x00\x00DHIP" + b"\x00" * 24
        + b'{"method":"client.notifyDevInfo","params":{"deviceInfo":{"'
        + long_name.encode()
        + b'":"a","DeviceType":"IPC-HDW1230S"}}}'
    )  # fmt: skip
    assert [(e.key, e.value) for e in dhip.parse_reply(reply)] == [("dhip.device_type", "IPC-HDW1230S")]


def test_sadp_element_name_too_long_for_a_key_is_skipped() -> None:
    # the same defect in SADP, seen when fixing the DHIP one (fixed before a fuzzer reached it; the hypothesis
    # round trip test_sadp_probe_match_round_trip draws element names long enough to hit it)
    tag = "Model" + "x" * 200
    data = f"<ProbeMatch><{tag}>DS-2CD2085G1-I</{tag}><DeviceSN>DS-1</DeviceSN></ProbeMatch>".encode()
    assert [(e.key, e.value) for e in sadp.parse_probe_match(data)] == [("sadp.device_sn", "DS-1")]


def test_nmap_xml_naming_an_unknown_encoding_gives_nothing() -> None:
    # found by fuzz_nmap_xml: the same LookupError, out of parse_nmap_xml
    assert nmap.parse_nmap_xml(crash("nmap_xml", "unknown-xml-encoding.xml")) == []


def test_empty_evidence_key_in_report_input_is_skipped_and_named() -> None:
    # found by fuzz_evidence_lines: `{"key": ""}` passed parse_host_line and then Evidence() raised in read_hosts,
    # ending `camscan report --evidence` with a traceback
    errors: list[str] = []
    text = crash("evidence_lines", "empty-evidence-key.jsonl").decode()
    hosts = list(read_hosts(io.StringIO(text), "in.jsonl", errors))
    assert [h.id for h in hosts] == [""] and hosts[0].evidence == []
    assert errors == ["in.jsonl:1: evidence[0] has an empty 'key'; item skipped"]


def test_evidence_line_with_an_integer_too_long_to_read_is_a_line_error() -> None:
    # found while writing fuzz_evidence_lines (the fuzzer did not reach it in its runs): json.loads raises a plain
    # ValueError, not JSONDecodeError, for an integer of more than 4300 digits (Python's int conversion limit);
    # it escaped parse_host_line and so `camscan identify`
    line = crash("evidence_lines", "integer-over-4300-digits.jsonl").decode()
    with pytest.raises(LineError, match="not valid JSON"):
        parse_host_line(line)


@pytest.fixture(scope="module")
def makers() -> dict[str, object]:
    return dict(load_ruleset().makers)


def test_policy_rule_citing_a_mapping_is_a_pack_error(tmp_path: Path, makers: dict[str, object]) -> None:
    # found by fuzz_policy_yaml: `citations: [{np}]` (a mapping, not an id) made the citation lookup raise
    # TypeError (unhashable dict)
    path = tmp_path / "council.yaml"
    path.write_bytes(crash("policy_yaml", "rule-citation-not-a-string.yaml"))
    with pytest.raises(PackError, match="citation ids"):
        load_pack(path, makers)


def test_policy_example_evidence_of_the_wrong_shape_is_a_pack_error(tmp_path: Path, makers: dict[str, object]) -> None:
    # found by fuzz_policy_yaml: an example device's evidence item without `key` raised pydantic's ValidationError
    path = tmp_path / "council.yaml"
    path.write_bytes(crash("policy_yaml", "example-evidence-without-key.yaml"))
    with pytest.raises(PackError, match="bad device"):
        load_pack(path, makers)


def test_dhip_empty_field_name_is_skipped() -> None:
    # found by fuzz_sadp_dhip (long run): `{"": "1"}` in deviceInfo made the key `dhip.`, which is no key of
    # docs/evidence.md
    assert dhip.parse_reply(crash("sadp_dhip", "dhip-empty-field-name.bin")) == []


# Found by reading the loaders while writing fuzz_rules_yaml and fuzz_policy_yaml, each confirmed to crash the unfixed
# loader before the fix: what PyYAML and re raise besides their own errors, and YAML values of the wrong type.
COUNCIL_RULES = {
    "pattern-repeat-count-overflow.yaml": "bad pattern: the repetition number is too large",
    "pattern-nested-too-deep.yaml": "bad pattern: maximum recursion depth",
    "yaml-impossible-date.yaml": "not valid YAML: ValueError: month must be in 1..12",
    "yaml-integer-over-4300-digits.yaml": "not valid YAML: ValueError: Exceeds the limit",
    # libyaml (the C loader camscan uses when PyYAML has it) refuses the nesting itself; pure PyYAML recursed
    "yaml-nested-too-deep.yaml": "not valid YAML: ",
}


@pytest.mark.parametrize("name", sorted(COUNCIL_RULES))
def test_council_rule_file_crash_is_a_rule_error(tmp_path: Path, name: str) -> None:
    (tmp_path / "council.yaml").write_bytes(crash("rules_yaml", name))
    with pytest.raises(RuleError) as refused:
        load_ruleset(extra_dirs=[tmp_path])  # the whole loader, as `--rules-dir` runs it
    assert refused.value.file == "council.yaml" and COUNCIL_RULES[name] in refused.value.reason


COUNCIL_PACKS = {
    "citations-not-a-list.yaml": "'citations' must be a list",
    "examples-not-a-list.yaml": "'examples' must be a list",
    "condition-maker-not-a-name.yaml": "when.manufacturer: ['Dahua'] is not a name",
    "condition-device-type-mapping.yaml": "when.device_type: {'camera': 1} is not a name",
    "condition-pattern-overflow.yaml": "bad pattern: the repetition number is too large",
    "yaml-impossible-date.yaml": "not valid YAML: ValueError: day is out of range for month",
}


@pytest.mark.parametrize("name", sorted(COUNCIL_PACKS))
def test_council_policy_pack_crash_is_a_pack_error(tmp_path: Path, makers: dict[str, object], name: str) -> None:
    path = tmp_path / "council.yaml"
    path.write_bytes(crash("policy_yaml", name))
    with pytest.raises(PackError) as refused:
        load_pack(path, makers)
    assert COUNCIL_PACKS[name] in refused.value.reason


def test_mdns_srv_target_of_blanks_gives_no_host_name() -> None:
    # found by fuzz_mdns (long run): an SRV record whose target is " ." became a `hostname` Evidence item with an
    # empty value once trimmed
    items = mdns.parse_mdns_answer(crash("mdns", "srv-target-blank-host-name.bin"))
    assert all(e.value for e in items) and "hostname" not in [e.key for e in items]


def test_dhcp_at_a_time_past_year_9999_is_still_read() -> None:
    # found by fuzz_frames (long run): a DHCP message stamped 1.8e19 s made datetime.fromtimestamp raise inside the
    # dissector (counted as a decode failure, and the camera's DHCP Evidence lost); a pcapng block can carry such
    # a time (any 64-bit count in units of if_tsresol)
    importlib.import_module("tests.fuzz.fuzz_frames").check(crash("frames", "dhcp-time-past-year-9999.bin"))
    path = CRASHES / "pcap" / "pcapng-dhcp-time-past-year-9999.pcapng"
    analyzer = Analyzer()
    stats = read_capture(path, analyzer.feed)
    assert stats.decode_failures == 0
    [host] = analyzer.hosts()
    assert ("hostname", "hik-cam") in [(e.key, e.value) for e in host.evidence]
    assert all(e.observed_at is None for e in host.evidence)


# Found by reading capture.py while writing fuzz_pcap (the fuzzer had not reached them in its first 60,000
# executions): pcapng packet blocks shorter than their own fixed fields.
def test_pcapng_packet_blocks_too_short_for_their_fields_are_bad_blocks() -> None:
    with pytest.raises(CaptureError, match="no packet could be read"):
        read_capture(CRASHES / "pcap" / "pcapng-empty-enhanced-packet-block.pcapng", lambda *a: None)
    for name in ("pcapng-empty-packet-block.pcapng", "pcapng-empty-simple-packet-block.pcapng"):
        got: list[int] = []

        def sink(d: bytes, p: int, n: int, link: int, ts: float, got: list[int] = got) -> None:
            got.append(n)

        stats = read_capture(CRASHES / "pcap" / name, sink)
        # the good ARP packet is read; the empty block is counted (the SPB once gave a length of -4)
        assert got == [60] and stats.bad_blocks == 1 and stats.problems()
