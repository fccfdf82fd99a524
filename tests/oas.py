"""Where Codat's OpenAPI spec is, for the tests that check against it.

``$CODAT_OAS_DIR`` if set, else ``../shared/codat-oas/`` beside the repository (where CI lays
it). When it is nowhere, those tests skip with :data:`OAS_HINT`, which says how to get it:
a fresh clone elsewhere still passes ``bash .ci/run``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

__all__ = ["OAS_HINT", "PLATFORM_SPEC", "SPEC_PATH", "find_oas_dir", "requires_spec"]

REPO_ROOT = Path(__file__).resolve().parents[1]
PLATFORM_SPEC = "Codat-Platform.json"
OAS_HINT = (
    "Codat's OpenAPI spec (Codat-Platform.json) was not found: set CODAT_OAS_DIR to the "
    "folder holding it, or lay shared/codat-oas/ beside the repository (../shared/codat-oas/ "
    "from the repo root; a git worktree elsewhere needs CODAT_OAS_DIR). The spec is "
    "published in Codat's codatio/oas repository."
)


def find_oas_dir() -> Path | None:
    """The folder of ``Codat-Platform.json``, or None when it is nowhere to be found."""
    env = os.environ.get("CODAT_OAS_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "codat-oas")
    for folder in candidates:
        if (folder / PLATFORM_SPEC).is_file():
            return folder
    return None


_DIR = find_oas_dir()
#: ``Codat-Platform.json`` (a path that does not exist when the spec was not found).
SPEC_PATH = (_DIR or REPO_ROOT.parent / "shared" / "codat-oas") / PLATFORM_SPEC
#: Mark a test module or test that needs the spec: it skips, saying how to get it.
requires_spec = pytest.mark.skipif(_DIR is None, reason=OAS_HINT)
