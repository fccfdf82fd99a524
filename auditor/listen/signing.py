"""Sign a webhook delivery as Codat (Svix) does: for the tests, the benchmark and any
sender (e.g. a sandbox that emits webhooks). Uses the same library as the verifier."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

__all__ = ["signed_headers"]


def signed_headers(
    secret: str, webhook_id: str, body: str, *, timestamp: float | None = None
) -> dict[str, str]:
    """The ``webhook-id``/``-timestamp``/``-signature`` headers of ``body`` (plus its
    ``Content-Type``), signed with ``secret`` at ``timestamp`` (default: now)."""
    sent = int(time.time() if timestamp is None else timestamp)
    signature = Webhook(secret).sign(webhook_id, datetime.fromtimestamp(sent, UTC), body)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(sent),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
