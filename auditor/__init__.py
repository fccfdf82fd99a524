"""codat-freshness-auditor: audit the data freshness of a fleet of Codat companies.

Data flows one way: Codat API (or the sandbox) -> :mod:`auditor.codat` client ->
:mod:`auditor.collector` -> :mod:`auditor.store` -> :mod:`auditor.rules` -> findings ->
:mod:`auditor.report`.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
