"""The report reader of ingest (`load_json`, pydantic-core's JSON reader with json.loads behind it) reads
every document exactly as `json.loads(raw.decode("utf-8"))` does: the same objects (types, values, key
order) for what it accepts, an IngestError for what json.loads refuses. The digest is verified over what
it reads, so this is what keeps the integrity check exact."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner.report.export import digest_of
from scanner.service.ingest import IngestError, load_json, parse_report
from tests.service.conftest import HIK, Dev, day, make_report

MANY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _shape(value: Any) -> Any:
    """`value` with every type, float bit pattern and key order made visible, for an exact comparison."""
    if isinstance(value, dict):
        return ("dict", [(k, _shape(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_shape(v) for v in value])
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else value.hex())
    return (type(value).__name__, value)


def _reference(raw: bytes) -> Any:
    """What ingest read before: json.loads of the UTF-8 text, or the exception it raised."""
    try:
        return _shape(json.loads(raw.decode("utf-8")))
    except (ValueError, RecursionError) as exc:
        return type(exc)


def _ours(raw: bytes) -> Any:
    try:
        return _shape(load_json(raw))
    except IngestError:
        return "refused"


def _same(raw: bytes) -> None:
    expected, got = _reference(raw), _ours(raw)
    if isinstance(expected, type):
        assert got == "refused", raw[:200]
    else:
        assert got == expected, raw[:200]


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**60), max_value=10**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x3FF))
    | st.sampled_from(["", "\x00", "\x1f", "\x7f", '"', "\\", "/", "\u2028", "é", "😀", "\ufeff"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6),
    max_leaves=40,
)


@MANY
@given(json_values, st.booleans(), st.sampled_from([None, 0, 2, "\t"]))
def test_the_same_objects_as_json_loads_for_generated_documents(value: Any, ascii_only: bool, indent: Any) -> None:
    try:
        raw = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in the text: no UTF-8 to write it as, so escape it
        raw = json.dumps(value, ensure_ascii=True, indent=indent).encode("utf-8")
    _same(raw)


@MANY
@given(json_values, st.data())
def test_the_same_outcome_as_json_loads_for_mangled_documents(value: Any, data: st.DataObject) -> None:
    raw = bytearray(json.dumps(value, ensure_ascii=data.draw(st.booleans())).encode("utf-8", "surrogatepass"))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        at = data.draw(st.integers(min_value=0, max_value=len(raw)))
        what = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = data.draw(st.sampled_from([*b'{}[]",:\\u0e-+.NIaftn ', 0, 0x0C, 0x80, 0xC0, 0xED, 0xFF]))
        if what == "insert":
            raw[at:at] = bytes([byte])
        elif raw and at < len(raw):
            raw[at : at + 1] = b"" if what == "delete" else bytes([byte])
    _same(bytes(raw))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_the_same_outcome_as_json_loads_for_any_bytes(raw: bytes) -> None:
    _same(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1,"b":2,"a":3}',  # a repeated key: the last value, at the first key's place
        b'{"a":NaN,"b":Infinity,"c":-Infinity,"d":1e400,"e":-0,"f":-0.0}',
        b'{"a":123456789012345678901234567890,"b":-9223372036854775809,"c":1.0000000000000000000000001}',
        b'{"a":5e-324,"b":2.2250738585072011e-308,"c":0.30000000000000004,"d":1E+2}',
        b'{"a":"\\ud83d\\ude00","b":"\\u0000","c":"\\/","d":"\x7f","\\u00e9":"\xc3\xa9"}',
        b'{"a":"\\ud800"}',  # a lone surrogate: json.loads reads it (and parse_report then refuses it)
        b'{"a":"\\udc00x"}',
        b"[" * 300 + b"]" * 300,  # deeper than pydantic-core reads: json.loads decides
        b"[" * 100_000 + b"]" * 100_000,  # deeper than json.loads reads: refused, not a crash
        b'{"a":' + b"9" * 5000 + b"}",  # an int json.loads will not convert: refused, not a crash
        b"\xef\xbb\xbf{}",
        b'{"a":"\xed\xa0\x80"}',  # a surrogate encoded as UTF-8 is not UTF-8
        b'{"a":"\xc0\x80"}',
        b'{"a":"\t"}',
        b'{"a":1}\x00',
        b"\x0c{}",
        b" \r\n\t{} \n",
        b'{"a":[1,2,]}',
        b'{"a":01}',
        b'{"a":-NaN}',
        b"",
    ],
)
def test_edge_cases_read_as_json_loads_reads_them(raw: bytes) -> None:
    _same(raw)


def test_a_lone_surrogate_is_refused_with_a_reason() -> None:
    doc = json.loads(make_report([Dev("10.77.0.11", "44:19:b6:00:00:11", tuple(HIK))], day(0)))
    doc["devices"][0]["model"] = "\ud800"
    doc.pop("integrity")
    raw = json.dumps({**doc, "integrity": {"algorithm": "sha256", "digest": "0" * 64}}).encode()
    with pytest.raises(IngestError, match="lone surrogate"):
        parse_report(raw)


def test_a_real_report_reads_as_json_loads_reads_it_and_verifies() -> None:
    raw = make_report([Dev("10.77.0.11", "44:19:b6:00:00:11", tuple(HIK))], day(0))
    _same(raw)
    _, doc = parse_report(raw)
    assert doc == json.loads(raw) and doc["integrity"]["digest"] == digest_of(json.loads(raw))
