"""The formats of the knowledge files in fingerprints/, as pydantic models: one place that says what a rule
file, the maker list, the OEM table, the OUI table and the company-name vocabulary may hold.

The models check structure and field types (unknown fields are refused everywhere); the loaders
(rules.py, oui.py) then check meaning (a maker is canonical, a pattern compiles, an example matches).
`camscan rules schema KIND` prints the JSON Schema of a format, so a council writing its own rules gets an
editor-checkable file (the schemas are committed in fingerprints/schema/, as recog ships an XSD).

Every file is read once as bytes: what is parsed is what is hashed into the report's `scan.knowledge`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scanner._data import load_yaml
from scanner.errors import CamscanError
from scanner.model import DeviceType

RULE_ID = r"^[a-z0-9][a-z0-9.-]*$"
DeviceTypeName = Literal["camera", "recorder", "encoder", "intercom", "access_control", "other"]
assert set(DeviceTypeName.__args__) == {t.value for t in DeviceType}  # type: ignore[attr-defined]

StrOrList = str | list[str]
ScalarExample = str | int | float


class RuleError(CamscanError, ValueError):
    """A knowledge file that cannot be used, with where and why."""

    def __init__(self, file: str, rule: str | None, reason: str) -> None:
        self.file, self.rule, self.reason = file, rule, reason
        where = f"{file}: rule {rule!r}" if rule else file
        super().__init__(f"{where}: {reason}")


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# -- rule files (fingerprints/<family>.yaml) ---------------------------------------------------------------


class ExampleDoc(_Doc):
    """An example value with the fields the rule must extract from it (null: must extract nothing)."""

    value: ScalarExample
    model: str | None = None
    firmware: str | None = None
    mac: str | None = None  # compared as a normalised MAC (aa:bb:cc:dd:ee:ff)


class RuleDoc(_Doc):
    """One fingerprint rule: a regular expression over one or more Evidence keys, and what it asserts."""

    id: Annotated[str, Field(pattern=RULE_ID, description="unique in the file; the report cites family/id")]
    match: Annotated[
        str, Field(min_length=1, description="Python regular expression; named groups model, firmware, mac")
    ]
    keys: StrOrList | None = Field(default=None, description="Evidence keys read (default: the file's keys)")
    manufacturer: str | None = Field(default=None, description="the maker the firmware evidence names")
    brand: str | None = Field(default=None, description="the label on the box")
    candidates: StrOrList | None = Field(default=None, description="makers sharing this banner: names none")
    device_type: DeviceTypeName | None = None
    confidence: Annotated[float, Field(ge=0.5, le=0.99)] = 0.8
    source: Annotated[str, Field(min_length=1, description="where the fact comes from")]
    examples: Annotated[list[ScalarExample | ExampleDoc], Field(min_length=1)]
    counter_examples: list[ScalarExample] = Field(default_factory=list)
    note: str | None = None


class RuleFileDoc(_Doc):
    """A rule file: the Evidence keys it reads and its rules, tried in order (first match wins)."""

    family: str | None = Field(default=None, description="the rule-id prefix (default: the first key)")
    keys: StrOrList
    rules: Annotated[list[RuleDoc], Field(min_length=1)]


# -- makers.yaml, oem.yaml ---------------------------------------------------------------------------------


class MakerDoc(_Doc):
    name: Annotated[str, Field(min_length=1)]
    kind: Literal["camera", "mixed", "other"] = "camera"
    covered: bool = False


class MakersDoc(_Doc):
    """The canonical maker and brand names; rules must use these spellings exactly."""

    makers: Annotated[list[MakerDoc], Field(min_length=1)]


class OemLinkDoc(_Doc):
    brand: str
    maker: str
    relationship: Literal["owned", "affiliate_historic", "oem_reported"]
    valid_from: str | int | None = None
    valid_until: str | int | None = None
    source: Annotated[str, Field(min_length=1)]
    note: str | None = None


class OemDoc(_Doc):
    """Brands owned by, historically affiliated with, or reported to relabel for, a maker."""

    relationships: list[OemLinkDoc]


# -- oui.yaml ------------------------------------------------------------------------------------------------


class OuiRuleDoc(_Doc):
    """IEEE registrant names (exact spellings) that are one canonical maker."""

    id: Annotated[str, Field(pattern=RULE_ID)]
    manufacturer: str
    brand: str | None = None
    registry_names: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    device_type: DeviceTypeName | None = None
    confidence: Annotated[float, Field(ge=0.5, le=0.99)] = 0.85
    source: Annotated[str, Field(min_length=1)]
    note: str | None = None
    examples: Annotated[list[str], Field(min_length=1, description="MACs whose registrant is one of the names")]


class LookalikeDoc(_Doc):
    """A registrant name that resembles a maker but is not it (Shanghai Dahua Scale Factory is not Dahua)."""

    registry_name: Annotated[str, Field(min_length=1)]
    not_maker: Annotated[str, Field(alias="not")]
    note: str | None = None
    source: str | None = None
    examples: list[str] = Field(default_factory=list)


class OuiDoc(_Doc):
    """The reviewed table from IEEE registrant names to canonical makers, and the look-alikes."""

    family: Literal["mac"] = "mac"
    makers: Annotated[list[OuiRuleDoc], Field(min_length=1)]
    lookalikes: list[LookalikeDoc] = Field(default_factory=list)


# -- names.yaml ------------------------------------------------------------------------------------------------


class NamesDoc(_Doc):
    """Words for cleaning a manufacturer name a device states that no rule knows (`Acme Vision Co., Ltd.` ->
    `Acme Vision`): company suffixes cut from the end, place names cut from the front, and placeholders that
    are never a maker."""

    company_suffixes: Annotated[list[str], Field(min_length=1, description="regular expressions, no anchors")]
    place_prefixes: list[str] = Field(default_factory=list)
    placeholders: list[str] = Field(default_factory=list)
    generic_words: list[str] = Field(
        default_factory=list, description="words that never identify a company (the MAC registry audit)"
    )


FORMATS: dict[str, type[_Doc]] = {
    "rules": RuleFileDoc,
    "makers": MakersDoc,
    "oem": OemDoc,
    "oui": OuiDoc,
    "names": NamesDoc,
}

D = TypeVar("D", bound=_Doc)


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one format (`rules`, `makers`, `oem`, `oui`, `names`)."""
    model = FORMATS[kind]
    schema = model.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"camscan {kind} file"
    return schema


def sha256_file(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_doc(path: Path, model: type[D]) -> tuple[D, bytes]:
    """(the validated document, the bytes it was parsed from); RuleError naming the file, the rule (when the
    problem is inside one) and the reason."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RuleError(path.name, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        raw = load_yaml(data)
    except yaml.YAMLError as exc:
        raise RuleError(path.name, None, f"not valid YAML: {exc}") from None
    except (ValueError, RecursionError) as exc:  # PyYAML's own: 2001-13-45, a 4300+ digit integer, deep nesting
        raise RuleError(path.name, None, f"not valid YAML: {exc.__class__.__name__}: {exc}") from None
    if not isinstance(raw, dict):
        raise RuleError(path.name, None, f"expected a mapping ({', '.join(model.model_fields)})")
    try:
        return model.model_validate(raw), data
    except ValidationError as exc:
        rule, reason = explain(exc, raw)
        raise RuleError(path.name, rule, reason) from None


# Reasons in the words a rule author needs, for the mistakes people make; pydantic's words for the rest.
_MISSING = {
    "source": "every rule needs a 'source'",
    "examples": "every rule needs at least one example",
    "match": "missing 'match' pattern",
    "registry_names": "registry_names must be a non-empty list of strings",
}
_INVALID = {
    "id": "rule id must be lower-case [a-z0-9.-]",
    "confidence": "confidence must be a number in 0.5..0.99, not {input!r}",
    "device_type": "device_type {input!r} is not one of " + str(sorted(t.value for t in DeviceType)),
    "examples": "every rule needs at least one example",
    "rules": "expected a non-empty 'rules' list",
    "source": "every rule needs a 'source'",
    "kind": "kind must be camera, mixed or other, not {input!r}",
    "relationship": "unknown relationship {input!r}",
}


def explain(exc: ValidationError, raw: dict[str, Any]) -> tuple[str | None, str]:
    """(the id of the rule or entry at fault, a one-line reason) from the first validation error."""
    errors = exc.errors()
    err = errors[0]
    loc = err["loc"]
    rule: str | None = None
    field: str | None = None
    node: Any = raw
    for part in loc:  # walk the document along the error's location
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            if rule is None and isinstance(node, dict):
                name = next((node[k] for k in ("id", "name", "registry_name", "brand") if k in node), None)
                rule = str(name) if name is not None else f"#{part}"
        elif isinstance(node, dict) and isinstance(part, str):
            field, node = part, node.get(part)
        else:
            break
    kind = err["type"]
    if kind == "extra_forbidden":
        extra = sorted(str(e["loc"][-1]) for e in errors if e["type"] == kind and e["loc"][:-1] == loc[:-1])
        return rule, f"unknown field(s) {extra}"
    if kind == "missing":
        return rule, _MISSING.get(field or "", f"missing '{field}'")
    template = _INVALID.get(field or "")
    if template:
        return rule, template.format(input=err.get("input"))
    return rule, f"{field}: {err['msg']}" if field else str(err["msg"])
