"""Doc-style variants the sandbox serves with ``--quirks`` (for some companies only).

Codat's documentation shows payloads the OpenAPI spec does not allow, and a robust client
must read them. For a quirky company (chosen by a hash of the seed and the company id, about
``quirk_share`` of them) the sandbox serves:

* a never-synced data type as ``{"dataType": "suppliers"}`` (no ``currentStatus``) for every
  type of its connections' source types missing from the dataStatus;
* timestamps with 7 fractional digits (``2024-04-30T15:18:25.9491234Z``) in the dataStatus
  and in pull operations;
* on half of them, one data type with an unknown status value (:data:`UNKNOWN_STATUS`);
* on the other half, an extra data type outside the spec's enum (:data:`UNKNOWN_DATA_TYPE`).

These responses are deliberately outside the spec; the contract tests exempt them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any, Final

from auditor.constants import ALL_DATA_TYPES, source_type_of

__all__ = ["UNKNOWN_DATA_TYPE", "UNKNOWN_STATUS", "QuirkPicker"]

UNKNOWN_STATUS: Final = "PartiallySynced"
UNKNOWN_DATA_TYPE: Final = "fixedAssets"

_MILLIS: Final = re.compile(r"(\d{2}:\d{2}:\d{2})\.(\d{3})Z$")
_TIME_FIELDS: Final = ("lastSuccessfulSync", "requested", "completed")


def _hash(*parts: object) -> int:
    text = "|".join(map(str, parts)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def seven_digits(value: Any, salt: int) -> Any:
    """``...HH:MM:SS.mmmZ`` -> ``...HH:MM:SS.mmmddddZ`` (other values unchanged)."""
    if not isinstance(value, str):
        return value
    return _MILLIS.sub(lambda m: f"{m.group(1)}.{m.group(2)}{salt % 10000:04d}Z", value)


class QuirkPicker:
    """Decides which companies are quirky and rewrites their payloads."""

    def __init__(self, seed: int, share: float) -> None:
        self.seed = seed
        self.share = share

    def is_quirky(self, company_id: str) -> bool:
        return _hash(self.seed, "quirk", company_id) / 2.0**64 < self.share

    def data_status(
        self, company_id: str, body: dict[str, Any], connections: Iterable[dict[str, Any]]
    ) -> dict[str, Any]:
        """The quirky variant of a dataStatus body (a new dict)."""
        h = _hash(self.seed, "variant", company_id)
        out: dict[str, Any] = {}
        for key, entry in body.items():
            if isinstance(entry, dict):
                entry = {k: seven_digits(v, h + i) for i, (k, v) in enumerate(entry.items())}
            out[key] = entry
        sources = {c.get("sourceType") for c in connections if c.get("status") == "Linked"}
        for data_type in ALL_DATA_TYPES:
            if data_type not in out and source_type_of(data_type) in sources:
                out[data_type] = {"dataType": data_type}
        if h % 2 == 0:
            for entry in out.values():
                if isinstance(entry, dict) and entry.get("currentStatus") == "Complete":
                    entry["currentStatus"] = UNKNOWN_STATUS
                    break
        else:
            template = next(
                (e for e in out.values() if isinstance(e, dict) and "lastSuccessfulSync" in e),
                None,
            )
            extra: dict[str, Any] = {"dataType": UNKNOWN_DATA_TYPE, "currentStatus": "Complete"}
            if template is not None:
                for key in ("lastSuccessfulSync", "latestSyncId", "latestSuccessfulSyncId"):
                    if key in template:
                        extra[key] = template[key]
            out[UNKNOWN_DATA_TYPE] = extra
        return out

    def pull_operation(self, company_id: str, op: dict[str, Any]) -> dict[str, Any]:
        h = _hash(self.seed, "variant", company_id)
        return {
            k: seven_digits(v, h + i) if k in _TIME_FIELDS else v
            for i, (k, v) in enumerate(op.items())
        }
