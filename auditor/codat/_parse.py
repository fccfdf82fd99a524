"""Reading Codat's payloads record by record: one bad record costs that record, never the page.

This is the parsing boundary (``docs/client.md``, "What the client does with bad data"):

* :func:`loads_json` decodes a body; text is made valid UTF-8 here, once: invalid UTF-8
  bytes and lone surrogates (``"\\ud800"``, a valid JSON escape that no encoder can write)
  become U+FFFD, in values and keys alike.
* :func:`parse_record` and the ``parse_*`` helpers validate one record on its own. A
  non-essential field that cannot be read (wrong type, unreadable or out-of-range time) is
  left missing, counted in :class:`ParseIssues` (``malformed_fields``, by ``kind.field``),
  and kept as raw text in the model's ``unreadable`` mapping. A record that cannot be
  identified (not an object, no usable ``id`` / ``dataType``) is skipped and counted
  (``skipped_records``, by kind).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from pydantic import ValidationError

from auditor.codat._models import (
    Company,
    CompanySyncSettings,
    Connection,
    DataStatus,
    PullOperation,
    SyncSetting,
    SyncSettings,
    _Model,
)

__all__ = [
    "ParseIssues",
    "clean_text",
    "loads_json",
    "parse_company",
    "parse_connection",
    "parse_data_status_entry",
    "parse_pull_operation",
    "parse_record",
    "parse_sync_settings",
    "sanitize",
]

_M = TypeVar("_M", bound=_Model)
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
#: A ``\uD800``-``\uDFFF`` escape in the raw bytes: the only way JSON can carry a surrogate.
_SURROGATE_ESCAPE: Final = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_RAW_LIMIT: Final = 200
_ID: Final = frozenset({"id"})
_DATA_TYPE: Final = frozenset({"dataType"})


@dataclass
class ParseIssues:
    """What the parsers could not read, for the run summary and the snapshot manifest.

    ``malformed_fields``: fields left missing, by ``kind.field`` (``company.name``,
    ``data_status.lastSuccessfulSync``). ``skipped_records``: records dropped because they
    could not be identified, by kind (``company``, ``connection``, ``data_status``,
    ``pull_operation``, ``sync_setting``).
    """

    malformed_fields: Counter[str] = field(default_factory=Counter)
    skipped_records: Counter[str] = field(default_factory=Counter)

    def copy(self) -> ParseIssues:
        """An independent copy (to subtract later: see :meth:`since`)."""
        return ParseIssues(Counter(self.malformed_fields), Counter(self.skipped_records))

    def since(self, before: ParseIssues) -> ParseIssues:
        """What was counted after ``before`` (a :meth:`copy` taken earlier)."""
        return ParseIssues(
            self.malformed_fields - before.malformed_fields,
            self.skipped_records - before.skipped_records,
        )

    def as_meta(self) -> dict[str, dict[str, int]]:
        """``{"malformed_fields": {...}, "skipped_records": {...}}``, sorted, for a manifest."""
        return {
            "malformed_fields": dict(sorted(self.malformed_fields.items())),
            "skipped_records": dict(sorted(self.skipped_records.items())),
        }


# ------------------------------------------------------------------------------- text


def clean_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (valid UTF-8 from then on)."""
    return _SURROGATE.sub("\ufffd", text)


def sanitize(value: Any) -> Any:
    """A decoded JSON value with :func:`clean_text` applied to every string, keys included."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {(clean_text(k) if isinstance(k, str) else k): sanitize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [sanitize(v) for v in value]
    return value


def loads_json(content: bytes) -> Any:
    """Decode a JSON body into Python values whose strings are all valid UTF-8.

    Invalid UTF-8 bytes become U+FFFD (``errors="replace"``), and so do lone surrogates.
    Raises ``ValueError`` (``json.JSONDecodeError``) when the body is not JSON.
    """
    try:
        value = json.loads(content)
    except UnicodeDecodeError:
        value = json.loads(content.decode("utf-8", "replace"))
    if _SURROGATE_ESCAPE.search(content):
        value = sanitize(value)
    return value


# ---------------------------------------------------------------------------- records


def _raw(value: Any) -> str:
    """A raw value as short text, for the ``unreadable`` mapping (and a finding's message)."""
    if isinstance(value, str):
        return value[:_RAW_LIMIT]
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (ValueError, RecursionError):
        text = type(value).__name__
    return text[:_RAW_LIMIT]


def _bad_fields(exc: ValidationError) -> set[str] | None:
    """The top-level keys the errors are about; None when an error is about the record."""
    bad: set[str] = set()
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = err["loc"]
        if not loc:
            return None
        bad.add(str(loc[0]))
    return bad


def parse_record(
    model: type[_M],
    data: Any,
    kind: str,
    issues: ParseIssues | None = None,
    *,
    essential: frozenset[str] = _ID,
) -> _M | None:
    """``data`` as a ``model``, reading what can be read; None when it cannot be identified.

    A field that fails validation is dropped (so it takes its default: None, empty) and
    counted as ``kind.field``; its raw value goes into ``unreadable``. The record is skipped
    (None, counted under ``kind``) when it is not an object or an ``essential`` field (wire
    name) is missing or unreadable.
    """
    if not isinstance(data, dict):
        if issues is not None:
            issues.skipped_records[kind] += 1
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc
    fixed = dict(data)
    unreadable: dict[str, str] = {}
    for _ in range(len(fixed) + 1):
        bad = _bad_fields(error)
        if not bad or bad & essential or not bad <= fixed.keys():
            break
        for key in bad:
            unreadable[key] = _raw(fixed.pop(key))
        try:
            record = model.model_validate(fixed)
        except ValidationError as exc:
            error = exc
            continue
        if issues is not None:
            for key in unreadable:
                issues.malformed_fields[f"{kind}.{key}"] += 1
        record._unreadable = unreadable
        return record
    if issues is not None:
        issues.skipped_records[kind] += 1
    return None


def _records(
    model: type[_M], items: Any, kind: str, issues: ParseIssues | None, essential: frozenset[str]
) -> list[_M]:
    out: list[_M] = []
    for item in items:
        record = parse_record(model, item, kind, issues, essential=essential)
        if record is not None:
            out.append(record)
    return out


def _with_list(
    model: type[_M],
    data: Any,
    kind: str,
    issues: ParseIssues | None,
    *,
    list_key: str,
    attr: str,
    child: type[_Model],
    child_kind: str,
    child_essential: frozenset[str],
    essential: frozenset[str],
) -> _M | None:
    """A record holding a list of child records, each child read on its own."""
    if isinstance(data, dict):
        try:
            return model.model_validate(data)  # fast path: everything readable
        except ValidationError:
            pass
    else:
        return parse_record(model, data, kind, issues, essential=essential)
    items = data.get(list_key)
    record = parse_record(model, {**data, list_key: []}, kind, issues, essential=essential)
    if record is None:  # skipped as a whole: its children are not counted on their own
        return None
    bad_list = items is not None and not isinstance(items, list)
    children: list[Any] = []
    if isinstance(items, list):
        children = _records(child, items, child_kind, issues, child_essential)
    if bad_list:
        if issues is not None:
            issues.malformed_fields[f"{kind}.{list_key}"] += 1
        record._unreadable = {**record.unreadable, list_key: _raw(items)}
    if children:
        unreadable = record._unreadable
        record = record.model_copy(update={attr: children})
        record._unreadable = unreadable
    return record


def parse_connection(data: Any, issues: ParseIssues | None = None) -> Connection | None:
    """One data connection; None (counted) when it has no usable ``id``."""
    return parse_record(Connection, data, "connection", issues)


def parse_company(data: Any, issues: ParseIssues | None = None) -> Company | None:
    """One company and its connections, each read on its own; None (counted) without an
    ``id``. A connection without an ``id`` is dropped (counted as ``connection``)."""
    return _with_list(
        Company,
        data,
        "company",
        issues,
        list_key="dataConnections",
        attr="data_connections",
        child=Connection,
        child_kind="connection",
        child_essential=_ID,
        essential=_ID,
    )


def parse_pull_operation(data: Any, issues: ParseIssues | None = None) -> PullOperation | None:
    """One pull operation; None (counted) when it has no usable ``id``."""
    return parse_record(PullOperation, data, "pull_operation", issues)


def parse_sync_settings(
    model: type[SyncSettings] | type[CompanySyncSettings],
    data: Any,
    issues: ParseIssues | None = None,
) -> SyncSettings | CompanySyncSettings | None:
    """Sync settings, each data type's setting read on its own (one without a usable
    ``dataType`` is dropped and counted as ``sync_setting``). None when not an object."""
    return _with_list(
        model,
        data,
        "sync_settings",
        issues,
        list_key="settings",
        attr="settings",
        child=SyncSetting,
        child_kind="sync_setting",
        child_essential=_DATA_TYPE,
        essential=frozenset(),
    )


def parse_data_status_entry(
    data_type: str, value: Any, issues: ParseIssues | None = None
) -> DataStatus:
    """One ``dataStatus`` entry as a :class:`DataStatus` whose ``data_type`` is ``data_type``
    (the key it was found under, whatever the entry's own ``dataType`` says).

    Fields that cannot be read are left None (see ``unreadable``). Raises ``ValueError``
    only when the entry is not an object.
    """
    if not isinstance(value, dict):
        if issues is not None:
            issues.skipped_records["data_status"] += 1
        raise ValueError(f"entry is {type(value).__name__}, not an object")
    record = parse_record(
        DataStatus, {**value, "dataType": data_type}, "data_status", issues, essential=_DATA_TYPE
    )
    if record is None:  # cannot happen: dataType is the key, a str
        raise ValueError("entry could not be read")
    return record
