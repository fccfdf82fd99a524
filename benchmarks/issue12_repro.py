"""Reproduce issue 12 (items 2, 3, 4, 10, 11, 12, 16) and 13 with APIs that exist both
before and after the fix, so the same script shows each failure and its fix.

    .venv/bin/python benchmarks/issue12_repro.py [ITEM ...]          # this tree
    git archive e98b815 auditor | tar -x -C /tmp/old12                  # the code before
    PYTHONPATH=/tmp/old12 .venv/bin/python benchmarks/issue12_repro.py 2 3 4 12 16 13
    PYTHONPATH=/tmp/old12 timeout 40 .venv/bin/python benchmarks/issue12_repro.py 10

ITEM is one of 2 3 4 10 11 bomb 12 16 13 (default: all). Before the fix, item 10 never ends
(the mock transport never yields, so even ``wait_for`` cannot stop it: use ``timeout``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import traceback
import zlib
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "tests"))
import httpx
from aiohttp import web
from hostile_codat import API_KEY, FakeCodat, LoopbackServer, good_status

import auditor
from auditor.codat import CodatClient, RateLimitPolicy, RetryPolicy
from auditor.collector import collect_to_store
from auditor.store import list_snapshots, load_snapshot

print("auditor from", auditor.__file__)
AT = datetime(2024, 5, 1, 6, 30, tzinfo=UTC)
ONE = RetryPolicy(max_attempts=1)
NOL = RateLimitPolicy(requests_per_minute=None, max_concurrent_per_company=None)


def client(fake: FakeCodat | None = None, **kw: object) -> CodatClient:
    return CodatClient(
        API_KEY,
        base_url=kw.pop("base_url", "http://codat.test"),
        retry=ONE,
        rate_limit=NOL,
        transport=kw.pop("transport", fake.transport() if fake else None),
        **kw,  # type: ignore[arg-type]
    )


async def store_run(fake: FakeCodat) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        async with client(fake) as c:
            run = await collect_to_store(c, tmp, snapshot_at=AT, progress="off")
        snap = load_snapshot(Path(tmp), run.snapshot_id)
        return f"complete={run.complete} companies={snap.companies['company_id'].nunique()}"


async def item2() -> str:
    fake = FakeCodat(
        companies=[{"id": "a", "name": "A", "created": "0001-01-01T00:00:00"}, {"id": "b"}],
        statuses={
            "a": {"invoices": good_status(lastSuccessfulSync="0001-01-01T00:00:00")},
            "b": {"invoices": good_status()},
        },
    )
    return await store_run(fake)


async def item3() -> str:
    fake = FakeCodat(
        companies=[
            {"id": "a", "name": 5},
            {"id": "b", "name": "B"},
            {"id": "c", "dataConnections": [{"id": None}]},
        ],
        statuses={k: {"invoices": good_status()} for k in "abc"},
    )
    return await store_run(fake)


async def item4() -> str:
    fake = FakeCodat(
        companies=[{"id": "a", "name": "x\ud800"}], statuses={"a": {"invoices": good_status()}}
    )
    return await store_run(fake)


async def item10() -> str:
    n = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        n[0] += 1
        body = {"results": [{"id": "a"}], "_links": {"next": {"href": f"/companies?c={n[0]}"}}}
        return httpx.Response(200, content=json.dumps(body).encode())

    async with client(transport=httpx.MockTransport(handler)) as c:
        try:
            await asyncio.wait_for(c.list_companies(), 3)
        except TimeoutError:
            return f"still paging after 3 s ({n[0]} pages)"
    return "ended"


async def item11_drip() -> str:
    async def drip(request: web.Request) -> web.StreamResponse:
        r = web.StreamResponse()
        r.content_length = 1000
        await r.prepare(request)
        for _ in range(1000):
            await r.write(b" ")
            await asyncio.sleep(0.5)
        return r

    with LoopbackServer(drip) as server:
        async with client(base_url=server.base_url, timeout=2.0) as c:
            start = time.monotonic()
            try:
                await asyncio.wait_for(c.get_sync_settings(), 15)
            except TimeoutError:
                return "no answer and no error after 15 s (timeout=2)"
            except Exception as exc:
                return f"{type(exc).__name__} after {time.monotonic() - start:.1f} s"
    return "?"


async def item11_bomb() -> str:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join([packer.compress(b" " * (1 << 20)) for _ in range(512)] + [packer.flush()])

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    with LoopbackServer(handler) as server:
        async with client(base_url=server.base_url) as c:
            try:
                await c.get_company("x")
            except Exception as exc:
                return f"{len(bomb) >> 10} kB gzip -> {type(exc).__name__}: {str(exc)[:90]}"
    return "?"


async def item12() -> str:
    ids = [f"c{i:02d}" for i in range(30)]
    fake = FakeCodat(
        companies=[{"id": i} for i in ids],
        statuses={i: {"invoices": good_status()} for i in ids},
        status_hook=lambda cid, n: (401, {"error": "Unauthorized"}) if n > 5 else None,
    )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            async with client(fake) as c:
                run = await collect_to_store(c, tmp, snapshot_at=AT, progress="off")
        except Exception as exc:
            complete = int(list_snapshots(tmp)["complete"].sum())
            return f"raised {type(exc).__name__}; complete snapshots: {complete}"
        return f"returned complete={run.complete} companies_with_errors={run.companies_with_errors}"


async def item16() -> str:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path)
        return httpx.Response(200, content=b"{}")

    async with client(transport=httpx.MockTransport(handler)) as c:
        for cid in ("..", "."):
            await c.get_data_status(cid)
    return " ".join(p.decode() for p in seen)


async def item13() -> str:
    body = {
        "invoices": good_status(lastSuccessfulSync="yesterday"),
        "bills": good_status("bills", lastSuccessfulSync=0),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps(body).encode())

    async with client(transport=httpx.MockTransport(handler)) as c:
        try:
            st = await c.get_data_status("c")
        except Exception as exc:
            st = getattr(exc, "statuses", {})
            synced = st["bills"].last_successful_sync if "bills" in st else None
            return f"{type(exc).__name__}: kept {sorted(st)}; bills synced {synced}"
        synced, bad = st["bills"].last_successful_sync, st["invoices"].unreadable
        return f"kept {sorted(st)}; bills synced {synced}; invoices unreadable {bad}"


async def main() -> None:
    for name, fn in [
        ("2", item2),
        ("3", item3),
        ("4", item4),
        ("10", item10),
        ("11 drip", item11_drip),
        ("bomb", item11_bomb),
        ("12", item12),
        ("16", item16),
        ("13", item13),
    ]:
        wanted = [a for a in sys.argv[1:] if not a.startswith("-")]
        if wanted and name.split()[0] not in wanted:
            continue
        try:
            out = await fn()
        except Exception as exc:
            out = f"FAILED {type(exc).__name__}: {str(exc)[:150]}"
            if "-v" in sys.argv:
                traceback.print_exc()
        print(f"item {name:8} {out}", flush=True)


asyncio.run(main())
