"""Which link URLs from Codat may be shown to ops, or sent to a customer.

A ``linkUrl`` is repeated in remedies, the report and the relink list as a link to send a
customer, so a hostile or broken one (``javascript:``, ``http:``, another host, credentials in
the URL, spaces or control characters) must never be: only ``https`` links to a Codat host
(``codat.io`` and its subdomains, or the hosts configured in ``[rules.needs-relink]
link_hosts``) are kept; any other value becomes missing and the text says the link is unusable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

import pandas as pd

__all__ = ["DEFAULT_LINK_HOSTS", "safe_links"]

#: Hosts whose https links are shown (each with its subdomains).
DEFAULT_LINK_HOSTS: Final[tuple[str, ...]] = ("codat.io",)


def _pattern(hosts: Sequence[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(h.strip(".").lower()) for h in hosts if h.strip("."))
    # https, no userinfo, a host that is one of ``hosts`` or under one, an optional port, then
    # a path/query of printable characters with nothing that could break out of an attribute.
    return re.compile(
        rf"^https://(?:[a-z0-9-]+\.)*(?:{alternatives})(?::\d{{1,5}})?(?:[/?#][^\s\"'<>\\`]*)?$",
        re.IGNORECASE,
    )


def safe_links(links: pd.Series, hosts: Sequence[str] = DEFAULT_LINK_HOSTS) -> pd.Series:
    """``links`` as ``string``, with every value that is not a safe https Codat link missing."""
    values = links.astype("string")
    if not hosts:
        return pd.Series(pd.NA, index=links.index, dtype="string")
    ok = values.str.fullmatch(_pattern(hosts)).fillna(False).astype(bool)
    return values.where(ok)
