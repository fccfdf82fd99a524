"""Fakes for tests, benchmarks and notebooks: one home for synthetic fleets and findings.

* :mod:`auditor.testing.synthetic`: synthetic audit results (findings, resolved incidents,
  expired snoozes, a per-night history), and :data:`~auditor.testing.synthetic.HOSTILE_NAMES`
  for escaping tests: what the reports and the email digest are tested and benchmarked with;
* :mod:`auditor.testing.snapshots`: synthetic snapshots (a whole fleet's sync status, as the
  collector stores it), what the audit is tested and benchmarked with.

Their platforms come from :mod:`auditor.platforms`, like the sandbox's. This package is part
of the source tree (an editable install imports it; tests, benchmarks and notebooks need no
``sys.path`` edits) but not of the wheel: nothing the auditor runs imports it.
"""
