"""The sandbox fuzzed as a server by an independent tool: schemathesis, from Codat's own spec.

Our contract tests (``tests/test_sandbox_contract.py``) check the answers to requests *we*
chose. Here schemathesis reads ``Codat-Platform.json``, keeps the operations the sandbox
implements (:data:`auditor.sandbox.OPERATION_IDS`: every GET, plus the two refresh POSTs),
generates requests from the spec's parameters (valid ones and, schemathesis' negative mode,
invalid ones), sends them to a live :class:`SandboxServer` on loopback with its API key, and
checks each answer: no 5xx (``not_a_server_error``), a status the operation documents, the
documented content type and headers, and a body that validates against the response schema.

Path parameters are mostly real: ``companyId`` (and ``datasetId`` with it) is drawn from the
served fleet's companies (those without a deliberate dataStatus error: a served 500 is a
simulated Codat fault, covered by the contract tests), else left as schemathesis drew it
(an unknown id, which must answer a spec-valid 404).

Examples per operation: ``SANDBOX_FUZZ_EXAMPLES`` if set, else 15 (``HYPOTHESIS_PROFILE=long``:
300, with shrinking). The spec is found as in ``tests/strategies.py`` (``$CODAT_OAS_DIR``,
else ``../shared/codat-oas/`` beside the repository); without it the test skips, saying so.
"""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from strategies import FLEET_NOW, OAS_HINT, PLATFORM_SPEC, find_oas_dir

from auditor.sandbox import OPERATION_IDS, SandboxOptions, SandboxServer, generate_fleet

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
from schemathesis import checks as st_checks  # noqa: E402

#: The operations fuzzed: all the sandbox serves (its GETs and the two refresh POSTs).
FUZZED_OPERATIONS: Final[tuple[str, ...]] = tuple(sorted(OPERATION_IDS.values()))

LONG: Final = os.environ.get("HYPOTHESIS_PROFILE", "ci") == "long"
EXAMPLES: Final = int(os.environ.get("SANDBOX_FUZZ_EXAMPLES", "300" if LONG else "15"))
FUZZ_SETTINGS: Final = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not LONG,  # CI draws the same requests every run
    database=None,
    phases=(
        (Phase.explicit, Phase.generate, Phase.shrink) if LONG else (Phase.explicit, Phase.generate)
    ),
    suppress_health_check=list(HealthCheck),
)

FLEET_SIZE: Final = 40
FLEET = generate_fleet(FLEET_SIZE, seed=7, now=FLEET_NOW)
#: (companyId, datasetId) of companies whose dataStatus is served (no deliberate error).
KNOWN: Final[tuple[tuple[str, str | None], ...]] = tuple(
    (record.id, next((op["id"] for op in record.pull_operations), None))
    for record in FLEET
    if record.data_status_error is None
)

#: operationId -> HTTP status -> answers seen (to show the fuzzing reached real companies).
SEEN: dict[str, Counter[int]] = {op: Counter() for op in FUZZED_OPERATIONS}

OAS_DIR = find_oas_dir()

CHECKS: Final = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_headers_conformance,
    st_checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[SandboxServer]:
    """A sandbox over :data:`FLEET` on loopback: no faults, no quirks, no rate limit."""
    server = SandboxServer(FLEET, SandboxOptions(seed=7))
    server.start()
    yield server
    server.close()


def _spec(path: Path) -> dict[str, Any]:
    """The spec, with its one known inconsistency patched (and only that).

    The ``pageSize`` request parameter allows up to 5000 but the ``PagingInfo`` response
    schema says at most 2000; the sandbox echoes the page size asked for, as Codat does (see
    ``test_page_size_5000_breaks_only_the_spec_paging_max`` in the contract tests). Without
    the patch every page of 2001-5000 would be a "failure" of the spec, not of the sandbox.
    """
    spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    paging = spec["components"]["schemas"]["PagingInfo"]["properties"]["pageSize"]
    assert paging["maximum"] == 2000, "the spec changed: revisit this patch"
    paging["maximum"] = 5000
    return spec


def _auth(server: SandboxServer) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(server.api_key.encode()).decode()}


def _real_ids(path_parameters: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Mostly a real company (and one of its datasets), sometimes what schemathesis drew."""
    if not isinstance(path_parameters, dict) or "companyId" not in path_parameters:
        return st.just(path_parameters)

    def with_company(pair: tuple[str, str | None]) -> dict[str, Any]:
        company_id, dataset_id = pair
        out = {**path_parameters, "companyId": company_id}
        if "datasetId" in out and dataset_id is not None:
            out["datasetId"] = dataset_id
        return out

    real = st.sampled_from(KNOWN).map(with_company)
    return st.one_of(real, real, real, st.just(path_parameters))


if OAS_DIR is None:

    def test_sandbox_fuzz() -> None:
        pytest.skip(OAS_HINT)

else:
    SCHEMA = schemathesis.openapi.from_dict(_spec(OAS_DIR / PLATFORM_SPEC)).include(
        operation_id=list(FUZZED_OPERATIONS)
    )
    SCHEMA.hook("flatmap_path_parameters")(lambda _context, value: _real_ids(value))

    @SCHEMA.parametrize()
    @FUZZ_SETTINGS
    def test_sandbox_fuzz(case: Any, fuzz_server: SandboxServer) -> None:
        response = case.call_and_validate(
            base_url=fuzz_server.base_url, headers=_auth(fuzz_server), checks=CHECKS, timeout=10
        )
        SEEN[case.operation.definition.raw.get("operationId", "?")][response.status_code] += 1


def test_fuzzing_reached_every_operation_and_real_companies() -> None:
    """Not vacuous: every fuzzed operation was called, and answered 2xx for real companies.

    (Runs after the fuzz test in file order; skipped when that did not run in this session.)
    """
    if OAS_DIR is None or not any(SEEN.values()):
        pytest.skip("the fuzz test did not run in this session")
    print({op: dict(sorted(codes.items())) for op, codes in SEEN.items()})  # shown with -s
    missing = [op for op, codes in SEEN.items() if not codes]
    assert not missing, missing
    no_success = [op for op, codes in SEEN.items() if not any(200 <= c < 300 for c in codes)]
    assert not no_success, {op: dict(SEEN[op]) for op in no_success}
    assert len(FUZZED_OPERATIONS) == len(OPERATION_IDS) == 10
