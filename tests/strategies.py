"""Hypothesis strategies for fleets generated from Codat's own OpenAPI schemas (issue 12).

* :func:`find_oas_dir` finds ``Codat-Platform.json`` (``$CODAT_OAS_DIR``, else
  ``../shared/codat-oas/`` beside the repository).
* :class:`SchemaResolver` turns a component schema into one ``hypothesis-jsonschema`` can use:
  ``$ref``\\ s inlined (JSON pointers into this document or ``Codat-Common.json``, recursion
  guarded), OpenAPI 3.0 ``nullable`` turned into ``null`` alternatives, documentation keywords
  and formats it cannot handle dropped, sizes capped so that generation stays fast.
* :func:`fleet_cases` draws a :class:`FleetCase`: companies, their dataStatus, pull operations
  and the profile's sync settings from the schemas, optionally with hostile mutations (wrong
  types, nulls, out-of-range times, huge and unicode text, odd ids, duplicates...). Each
  mutation is logged in ``FleetCase.mutations`` so that a failing example reads as a list.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from hypothesis import strategies as st
from oas import OAS_HINT, PLATFORM_SPEC, find_oas_dir

from auditor.sandbox import CompanyRecord, Fleet

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The moment generated fleets describe (and the audit's ``as_of``).
FLEET_NOW = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)

#: Format names we generate ourselves (``custom_formats`` of hypothesis-jsonschema).
CODAT_DATETIME = "x-codat-date-time"
CODAT_UUID = "x-codat-uuid"

_DROP_KEYS = frozenset(
    {
        "description", "example", "examples", "title", "definitions", "deprecated",
        "readOnly", "writeOnly", "discriminator", "xml", "externalDocs", "x-internal",
        "x-speakeasy-name-override", "x-speakeasy-unknown-values",
    }
)  # fmt: skip
_SIZE_CAP_STRING = 40
_SIZE_CAP_ARRAY = 3
_SIZE_CAP_OBJECT = 3


class SchemaResolver:
    """Component schemas of the Codat spec, resolved for hypothesis-jsonschema."""

    def __init__(self, oas_dir: Path) -> None:
        self.oas_dir = oas_dir
        self._docs: dict[str, Any] = {}

    def _doc(self, name: str) -> Any:
        if name not in self._docs:
            self._docs[name] = json.loads((self.oas_dir / name).read_text(encoding="utf-8"))
        return self._docs[name]

    def _target(self, ref: str, current: str) -> tuple[str, str, Any]:
        file_part, _, pointer = ref.partition("#")
        doc_name = Path(file_part).name if file_part else current
        node = self._doc(doc_name)
        for raw in pointer.split("/")[1:]:
            token = unquote(raw).replace("~1", "/").replace("~0", "~")
            node = node[int(token)] if isinstance(node, list) else node[token]
        return doc_name, f"{doc_name}#{pointer}", node

    def component(self, name: str, *, caps: bool = True) -> dict[str, Any]:
        """``#/components/schemas/<name>`` with every ``$ref`` inlined."""
        ref = f"#/components/schemas/{name}"
        resolved = self._resolve({"$ref": ref}, PLATFORM_SPEC, (), caps)
        assert isinstance(resolved, dict)
        return resolved

    def _resolve(self, node: Any, doc: str, stack: tuple[str, ...], caps: bool) -> Any:
        if isinstance(node, list):
            return [self._resolve(n, doc, stack, caps) for n in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            ref = node["$ref"]
            target_doc, key, target = self._target(ref, doc)
            if key.endswith("/components/schemas/DateTime"):
                base: dict[str, Any] = {"type": "string", "format": CODAT_DATETIME}
            elif key in stack:  # recursion: stop with "any object"
                base = {"type": "object", "maxProperties": 0}
            else:
                base = self._resolve(target, target_doc, (*stack, key), caps)
            nullable = bool(node.get("nullable"))
            siblings = {k: v for k, v in node.items() if k not in ("$ref", "nullable")}
            merged = dict(base)
            if siblings:
                merged.update(self._resolve(siblings, doc, stack, caps))
            return {"anyOf": [merged, {"type": "null"}]} if nullable else merged
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _DROP_KEYS or key.startswith("x-"):
                continue
            if key == "format":
                if value == "uuid":
                    out["format"] = CODAT_UUID
                elif value == CODAT_DATETIME:
                    out["format"] = value
                continue  # uri, date-time, int32...: dropped (we make our own times)
            if key in ("properties", "patternProperties"):
                out[key] = {k: self._resolve(v, doc, stack, caps) for k, v in value.items()}
            else:
                out[key] = self._resolve(value, doc, stack, caps)
        if caps:
            kind = out.get("type")
            if kind == "string" and "enum" not in out and "format" not in out:
                out.setdefault("maxLength", _SIZE_CAP_STRING)
            if kind == "array":
                out["maxItems"] = min(out.get("maxItems", _SIZE_CAP_ARRAY), _SIZE_CAP_ARRAY)
            if kind == "object" and not {"properties", "allOf"} & out.keys():  # a free map
                out["maxProperties"] = min(
                    out.get("maxProperties", _SIZE_CAP_OBJECT), _SIZE_CAP_OBJECT
                )
                if out.get("additionalProperties", True) is True:
                    out["additionalProperties"] = {"type": "string", "maxLength": 20}
        return self._finish(out)

    @staticmethod
    def _finish(out: dict[str, Any]) -> dict[str, Any]:
        if out.pop("nullable", False):
            return {"anyOf": [out, {"type": "null"}]}
        return out


# --------------------------------------------------------------------------- values


def _codat_time(moment: datetime, style: int) -> str:
    """``moment`` in one of the ISO-8601 variants Codat documents."""
    if style == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if style == 1:  # 7 fractional digits
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "4Z"
    if style == 2:  # no zone: UTC
        return moment.strftime("%Y-%m-%dT%H:%M:%S")
    return moment.astimezone(timezone(timedelta(hours=-5))).replace(microsecond=0).isoformat()


codat_times = st.builds(
    _codat_time,
    st.datetimes(min_value=datetime(2018, 1, 1), max_value=datetime(2024, 5, 1, 5, 59)).map(
        lambda d: d.replace(tzinfo=UTC)
    ),
    st.integers(0, 3),
)
codat_uuids = st.uuids().map(str)
CUSTOM_FORMATS: dict[str, st.SearchStrategy[str]] = {
    CODAT_DATETIME: codat_times,
    CODAT_UUID: codat_uuids,
}

HUGE = 200_000
#: Times no parser should crash on.
HOSTILE_TIMES: tuple[Any, ...] = (
    "0001-01-01T00:00:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59.9999999Z",
    "9999-12-31T23:59:59-12:00",
    "soon",
    "",
    "yesterday",
    "2024-02-30T00:00:00Z",
    "2024-05-01T06:00:00+25:00",
    "2024-05-01T06:00:00.123456789012345678Z",
    "\ud800",
    12345,
    1714543200000,
    -1.5,
    True,
    [],
    {},
    None,
)
#: Text that is legal JSON but hard to show: bidi, emoji, zero-width, combining, controls.
WEIRD_TEXT: tuple[str, ...] = (
    "\u202eevil\u202c \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",
    "\U0001f4a9\U0001f468\u200d\U0001f469\u200d\U0001f467 Ltd \U0001f3f4\u200d\u2620\ufe0f",
    "zero\u200bwidth\u200c\u200d\ufeff",
    "Z\u0351\u0345a\u0353l\u0362g\u0349o\u0315",
    "ctrl\x00\x01\x07\x1b[31m\r\n\t",
    "<script>alert(1)</script>&amp;\"'",
    '=HYPERLINK("http://x")',
    "\ud800 lone",
    "\udfff",
    " ",
)
#: Company ids no path should be built from as-is.
HOSTILE_IDS: tuple[Any, ...] = (
    "..", ".", "a/b", "%2F", "a%2Fb", "?x=1", "#frag", " ", "id\x00nul", "id\nline",
    "\ud800", "\u202eRTL", "\U0001f4a9", "x" * 5000, "", None, 42, 1.5, True, [], {},
)  # fmt: skip
UNKNOWN_STATUSES: tuple[Any, ...] = ("Exploded", "", "complete", "COMPLETE", 7, None, ["Complete"])


def huge_text(tag: str) -> str:
    """A 200 KB string whose start is recognisable (``HUGE-<tag>-``)."""
    head = f"HUGE-{tag}-"
    return head + "\u00e9x" * ((HUGE - len(head)) // 2)


# --------------------------------------------------------------------------- cases


@dataclass
class FleetCase:
    """One generated fleet, as served: raw company entries in listing order."""

    entries: list[dict[str, Any]]
    sync_settings: dict[str, Any]
    mutations: list[str] = field(default_factory=list)
    #: strings longer than this that Codat sent (must never appear whole in report/digest)
    huge_values: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # the fleet itself may weigh megabytes
        ids = [_short(e["company"].get("id", "<missing>")) for e in self.entries]
        return f"FleetCase(companies={len(self.entries)}, ids={ids}, mutations={self.mutations!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis' printer
        printer.text(repr(self))

    def listed_ids(self) -> list[Any]:
        return [e["company"].get("id", _MISSING) for e in self.entries]

    def fleet(self) -> Fleet:
        """A sandbox :class:`Fleet` serving the entries verbatim, duplicates and odd ids
        included (the index keys of unusable or repeated ids are placeholders)."""
        records: list[CompanyRecord] = []
        keys: list[str] = []
        seen: set[str] = set()
        for n, entry in enumerate(self.entries):
            raw = entry["company"].get("id")
            key = raw if isinstance(raw, str) and raw not in seen else f"__unservable-{n}"
            seen.add(key)
            keys.append(key)
            records.append(
                CompanyRecord(
                    company=entry["company"],
                    data_status=entry["dataStatus"],
                    pull_operations=entry["pullOperations"],
                    data_status_error=entry.get("dataStatusError"),
                )
            )
        return Fleet(records, self.sync_settings, now=FLEET_NOW, company_ids=keys)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}...<{len(text)} chars>"


def usable_id(value: Any) -> bool:
    """An id a company can be audited under: a non-blank string."""
    return isinstance(value, str) and value.strip() != ""


@cache
def _schemas(oas_dir: str) -> dict[str, dict[str, Any]]:
    resolver = SchemaResolver(Path(oas_dir))
    return {
        name: resolver.component(name)
        for name in ("Company", "Connection", "DataStatus", "PullOperation", "SyncSettings")
    }


@cache
def _strategy(oas_dir: str, name: str) -> st.SearchStrategy[dict[str, Any]]:
    return schema_strategy(_schemas(oas_dir)[name])


_JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=20)
_ANY_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=6,
)


def _merge_all_of(schema: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        part = _merge_all_of(part) if "allOf" in part else part
        for key, value in part.items():
            if key == "properties":
                out["properties"] = {**out.get("properties", {}), **value}
            elif key == "required":
                out["required"] = sorted({*out.get("required", []), *value})
            else:
                out.setdefault(key, value)
    return out


def schema_strategy(schema: Any) -> st.SearchStrategy[Any]:
    """Values valid against ``schema``, a resolved JSON schema using the keywords the Codat
    component schemas use (type, enum, properties, required, additionalProperties,
    maxProperties, propertyNames, items, minItems, maxItems, maxLength, pattern, format,
    anyOf, oneOf, allOf).

    Our own instead of ``hypothesis-jsonschema``: its object strategy calls
    ``hypothesis.internal.conjecture.utils.many.more()``, which hypothesis 6.170 removed (an
    ``AttributeError`` on the first object drawn), and these schemas need none of its
    canonicalisation. Formats come from :data:`CUSTOM_FORMATS`; other formats are dropped by
    :class:`SchemaResolver`.
    """
    if schema is True or schema == {}:
        return _ANY_JSON
    if schema is False:
        return st.nothing()
    assert isinstance(schema, dict), schema
    if "allOf" in schema:
        return schema_strategy(_merge_all_of(schema))
    for key in ("anyOf", "oneOf"):
        if key in schema:
            base = {k: v for k, v in schema.items() if k != key}
            return st.one_of([schema_strategy({**base, **alt}) for alt in schema[key]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([schema_strategy({**schema, "type": k}) for k in kind])
    if kind is None:
        kind = "object" if "properties" in schema else None
    if kind == "string":
        fmt = schema.get("format")
        if fmt in CUSTOM_FORMATS:
            return CUSTOM_FORMATS[fmt]
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 40))
    if kind == "integer":
        return st.integers(schema.get("minimum", -(2**31)), schema.get("maximum", 2**31))
    if kind == "number":
        return st.floats(
            schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = schema.get("items", {})
        return st.lists(
            schema_strategy(items),
            min_size=schema.get("minItems", 0),
            max_size=schema.get("maxItems", 3),
        )
    if kind == "object":
        return _object_strategy(schema)
    return _ANY_JSON


def _object_strategy(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    props: dict[str, Any] = schema.get("properties", {})
    required = [k for k in schema.get("required", []) if k in props]
    optional = [k for k in props if k not in required]
    fixed = st.fixed_dictionaries(
        {k: schema_strategy(props[k]) for k in required},
        optional={k: schema_strategy(props[k]) for k in optional},
    )
    extra = schema.get("additionalProperties", True)
    room = schema.get("maxProperties", 3) - len(required)
    if extra is False or room <= 0 or props:  # extra keys of typed objects: mutations' job
        return fixed
    names = schema.get("propertyNames", {})
    keys = (
        st.from_regex(names["pattern"], fullmatch=True)
        if "pattern" in names
        else st.text(min_size=1, max_size=20)
    )
    return st.dictionaries(keys, schema_strategy(extra), max_size=room)


def spec_strategy(oas_dir: Path, name: str) -> st.SearchStrategy[dict[str, Any]]:
    """Objects valid against component ``name`` (caps applied: short strings, few items)."""
    return _strategy(str(oas_dir), name)


IN_PROGRESS = ("Initial", "Queued", "Fetching", "MapQueued", "Mapping", "Processing")


@st.composite
def _company_entry(
    draw: st.DrawFn, oas_dir: Path, n: int, data_types: tuple[str, ...]
) -> dict[str, Any]:
    company = draw(spec_strategy(oas_dir, "Company"))
    company["id"] = str(uuid.UUID(int=(n << 96) | draw(st.integers(0, 2**96 - 1))))
    for c_n, conn in enumerate(company.get("dataConnections") or []):
        conn["id"] = f"{company['id']}-conn{c_n}"
    types = draw(st.lists(st.sampled_from(data_types), unique=True, max_size=6))
    status: dict[str, Any] = {}
    pulls: list[dict[str, Any]] = []
    for data_type in types:
        entry = draw(spec_strategy(oas_dir, "DataStatus"))
        entry["dataType"] = data_type
        status[data_type] = entry
        if entry.get("currentStatus") in IN_PROGRESS and draw(st.booleans()):
            op = draw(spec_strategy(oas_dir, "PullOperation"))
            op["id"] = entry.setdefault("latestSyncId", str(uuid.uuid4()))
            op.update(companyId=company["id"], dataType=data_type)
            pulls.append(op)
    return {"company": company, "dataStatus": status, "pullOperations": pulls}


Mutation = Callable[[st.DrawFn, FleetCase, int], str]


def _pick(draw: st.DrawFn, values: tuple[Any, ...]) -> Any:
    return copy.deepcopy(draw(st.sampled_from(values)))


def _m_company_field(draw: st.DrawFn, case: FleetCase, i: int) -> str:
    company = case.entries[i]["company"]
    name = draw(st.sampled_from(("name", "description", "created", "lastSync", "id")))
    if name in ("created", "lastSync"):
        value = _pick(draw, HOSTILE_TIMES)
    elif name == "id":
        value = _pick(draw, HOSTILE_IDS)
    else:
        value = draw(
            st.sampled_from((None, 42, 1.5, ["a", "b"], {"x": 1}, True))
            | st.sampled_from(WEIRD_TEXT)
            | st.just(huge_text(f"{name}{i}"))
        )
    if isinstance(value, str) and len(value) >= HUGE:
        case.huge_values.append(value)
    company[name] = value
    return f"companies[{i}].{name} = {_short(value)}"


def _m_company_drop(draw: st.DrawFn, case: FleetCase, i: int) -> str:
    company = case.entries[i]["company"]
    name = draw(st.sampled_from(("id", "name", "dataConnections")))
    company.pop(name, None)
    return f"companies[{i}] without {name!r}"


def _m_connections(draw: st.DrawFn, case: FleetCase, i: int) -> str:
    company = case.entries[i]["company"]
    conns = company.get("dataConnections")
    if not isinstance(conns, list):
        conns = company["dataConnections"] = []
    how = draw(st.integers(0, 4))
    if how == 0:
        value = draw(st.sampled_from((None, "Linked", 3, {"id": "x"})))
        company["dataConnections"] = value
        return f"companies[{i}].dataConnections = {_short(value)}"
    if how == 1:
        conns.append(draw(st.sampled_from((1, "conn", None, []))))
        return f"companies[{i}].dataConnections[-1] is {_short(conns[-1])}"
    if how == 2 and conns and isinstance(conns[0], dict):
        conns.append(copy.deepcopy(conns[0]))
        return f"companies[{i}].dataConnections[0] listed twice"
    conn = {"id": f"{company.get('id')}-hostile", "sourceType": "Accounting"}
    conn.update(draw(st.sampled_from(({}, {"status": "Linked"}))))
    key = draw(st.sampled_from(("status", "platformName", "id", "lastSync", "created",
                                "sourceType", "integrationKey")))  # fmt: skip
    value: Any
    if key in ("lastSync", "created"):
        value = _pick(draw, HOSTILE_TIMES)
    elif key == "status":
        value = _pick(draw, (3, None, "Exploded", "", ["Linked"], "linked"))
    else:
        value = draw(
            st.sampled_from((None, 7, 1.5, ["x"], {"a": 1}))
            | st.sampled_from(WEIRD_TEXT)
            | st.just(huge_text(f"conn-{key}{i}"))
        )
    if isinstance(value, str) and len(value) >= HUGE:
        case.huge_values.append(value)
    conn[key] = value
    conns.append(conn)
    return f"companies[{i}].dataConnections += connection with {key} = {_short(value)}"


def _m_duplicate(draw: st.DrawFn, case: FleetCase, i: int) -> str:
    copy_of = copy.deepcopy(case.entries[i])
    if draw(st.booleans()):
        copy_of["company"]["name"] = "duplicate with another name"
    at = draw(st.integers(0, len(case.entries)))
    case.entries.insert(at, copy_of)
    return f"companies[{i}] listed again at position {at}"


def _m_data_status(draw: st.DrawFn, case: FleetCase, i: int) -> str:
    entry = case.entries[i]
    status = entry["dataStatus"]
    how = draw(st.integers(0, 6))
    data_type = draw(st.sampled_from(("suppliers", "invoices", "bankAccounts", "zzUnknownType")))
    if how == 0:
        status[data_type] = {"dataType": data_type}
        return f"companies[{i}].dataStatus[{data_type!r}] = {{'dataType': ...}} only"
    if how == 1:
        value = _pick(draw, UNKNOWN_STATUSES)
        status[data_type] = {"dataType": data_type, "currentStatus": value}
        return f"companies[{i}].dataStatus[{data_type!r}].currentStatus = {_short(value)}"
    if how == 2:
        value = _pick(draw, HOSTILE_TIMES)
        status[data_type] = {
            "dataType": data_type,
            "currentStatus": "Complete",
            "lastSuccessfulSync": value,
        }
        return f"companies[{i}].dataStatus[{data_type!r}].lastSuccessfulSync = {_short(value)}"
    if how == 3:
        value = draw(st.sampled_from((None, [], "Complete", 3)))
        status[data_type] = value
        return f"companies[{i}].dataStatus[{data_type!r}] = {_short(value)}"
    if how == 4:
        key = draw(st.sampled_from(("", " ", "\ud800", "x" * 5000, "\u202ertl", "a/b")))
        status[key] = {"dataType": key, "currentStatus": "Complete"}
        return f"companies[{i}].dataStatus has key {_short(key)}"
    if how == 5:  # a sync in progress whose pull operation is hostile
        sync_id = draw(st.sampled_from(("op-1", "", "\ud800", "../x", "x" * 3000)))
        status[data_type] = {
            "dataType": data_type,
            "currentStatus": "Fetching",
            "latestSyncId": sync_id,
        }
        field_name = draw(st.sampled_from(("requested", "status", "progress", "id")))
        op: dict[str, Any] = {"id": sync_id, "dataType": data_type, "status": "Fetching",
                              "requested": "2024-04-30T00:00:00Z", "progress": 10}  # fmt: skip
        op[field_name] = (
            _pick(draw, HOSTILE_TIMES) if field_name == "requested" else _pick(draw, (None, 3, "x"))
        )
        entry["pullOperations"].insert(0, op)
        return (
            f"companies[{i}].dataStatus[{data_type!r}] Fetching {_short(sync_id)}, pull op "
            f"{field_name} = {_short(op[field_name])}"
        )
    # Not 401: Codat answers 401 when it refuses the API key, and then the whole run stops
    # with exit 2 by design (tests/test_collector_hostile.py); per company it costs only that
    # company for every other status.
    code = draw(st.sampled_from((403, 404, 409, 429, 500, 503)))
    error = draw(st.sampled_from(("leak-key", "leak-token", "huge", "weird")))
    entry["dataStatusError"] = {"statusCode": code, "service": "PublicApi", "error": error}
    return f"companies[{i}] dataStatus answers {code} ({error})"


def _m_sync_settings(draw: st.DrawFn, case: FleetCase, i: int) -> str:
    settings = case.sync_settings
    how = draw(st.integers(0, 3))
    if how == 0:
        value = draw(st.sampled_from((None, "daily", {"dataType": "invoices"})))
        settings["settings"] = value
        return f"syncSettings.settings = {_short(value)}"
    items = settings.setdefault("settings", [])
    if not isinstance(items, list):
        return "syncSettings untouched"
    key = draw(st.sampled_from(("syncSchedule", "dataType", "syncFromUtc", "fetchOnFirstLink")))
    value = (
        _pick(draw, HOSTILE_TIMES)
        if key == "syncFromUtc"
        else _pick(draw, ("daily", -24, 0, 10**30, None, 1.5, "\ud800", ["x"]))
    )
    items.append({"dataType": "invoices", "fetchOnFirstLink": True, "syncSchedule": 24,
                  "syncOrder": 0, key: value})  # fmt: skip
    return f"syncSettings.settings += entry with {key} = {_short(value)}"


MUTATIONS: tuple[Mutation, ...] = (
    _m_company_field,
    _m_company_field,
    _m_company_drop,
    _m_connections,
    _m_connections,
    _m_duplicate,
    _m_data_status,
    _m_data_status,
    _m_data_status,
    _m_sync_settings,
)


def _fill_errors(case: FleetCase, api_key: str, token: str) -> None:
    """Fill the placeholders of ``dataStatusError`` bodies: echoes of our key (as Codat's
    error messages sometimes do), huge and weird text."""
    for n, entry in enumerate(case.entries):
        err = entry.get("dataStatusError")
        if not err:
            continue
        kind = err["error"]
        if kind == "leak-key":
            err["error"] = f"API key {api_key} is not valid for this client"
            err["correlationId"] = api_key
        elif kind == "leak-token":
            err["error"] = f"Authorization: Basic {token} was refused"
        elif kind == "huge":
            err["error"] = huge_text(f"error{n}")
            case.huge_values.append(err["error"])
        else:
            err["error"] = WEIRD_TEXT[n % len(WEIRD_TEXT)]


@st.composite
def fleet_cases(
    draw: st.DrawFn,
    oas_dir: Path,
    *,
    hostile: bool,
    api_key: str,
    max_companies: int = 12,
    max_mutations: int = 8,
) -> FleetCase:
    """A fleet drawn from the spec's schemas; with ``hostile``, then mutated."""
    from auditor.constants import ALL_DATA_TYPES

    types = tuple(ALL_DATA_TYPES)
    count = draw(st.integers(1, max_companies))
    entries = [draw(_company_entry(oas_dir, n, types)) for n in range(count)]
    settings = draw(spec_strategy(oas_dir, "SyncSettings"))
    for item in settings.get("settings") or []:
        if isinstance(item, dict):
            item["dataType"] = draw(st.sampled_from(types))
    case = FleetCase(entries=entries, sync_settings=settings)
    if hostile:
        for _ in range(draw(st.integers(1, max_mutations))):
            mutation = draw(st.sampled_from(MUTATIONS))
            target = draw(st.integers(0, len(case.entries) - 1))
            case.mutations.append(mutation(draw, case, target))
        token = base64.b64encode(api_key.encode()).decode()
        _fill_errors(case, api_key, token)
    return case


def iter_strings(value: Any) -> Iterator[str]:
    """Every string (keys included) inside a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from iter_strings(k)
            yield from iter_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from iter_strings(v)


__all__ = [
    "FLEET_NOW",
    "HOSTILE_IDS",
    "HOSTILE_TIMES",
    "OAS_HINT",
    "WEIRD_TEXT",
    "FleetCase",
    "SchemaResolver",
    "find_oas_dir",
    "fleet_cases",
    "huge_text",
    "iter_strings",
    "spec_strategy",
    "usable_id",
]
