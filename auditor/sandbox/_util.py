"""Small helpers shared by the sandbox modules: deterministic ids and draws, JSON, a cache."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any


def uid(seed: int, *parts: object) -> str:
    """A deterministic version-4 UUID string from ``seed`` and ``parts``."""
    text = f"{seed}|{'|'.join(map(str, parts))}".encode()
    h = hashlib.blake2b(text, digest_size=16).hexdigest()
    variant = "89ab"[int(h[16], 16) & 0x3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


def hash_unit(*parts: object) -> float:
    """A uniform [0, 1) number that is a pure function of ``parts``."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes, as the sandbox sends them.

    UTF-8; a body holding a lone surrogate (a fleet file may, as Codat's JSON can carry
    ``"\\ud800"``) cannot be UTF-8 and goes out ASCII-escaped instead.
    """
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()


class LRU:
    """A least-recently-used cache of at most ``size`` entries (a None value means absent)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)
