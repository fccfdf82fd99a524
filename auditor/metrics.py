"""Prometheus metrics of the nightly job: a textfile for node_exporter, optionally a Pushgateway.

``auditor run`` writes them when ``--metrics-textfile`` (``AUDITOR_METRICS_TEXTFILE``,
``[run] metrics_textfile``) names a file, and pushes them when ``AUDITOR_PUSHGATEWAY_URL`` (or
``[run] pushgateway_url``) names a Pushgateway. Both happen on every exit, a failed run's
included; a metrics failure is logged loudly and never changes the exit code.

The metrics (gauges; each run sets them afresh)::

    auditor_findings{rule,severity,state}          active findings tonight; resolved incidents
                                                   with state="resolved"
    auditor_findings_snoozed{rule,severity}        snoozed findings
    auditor_audit_incomplete                       1 when a rule or a fleet-wide input is missing
    auditor_companies_collected                    companies collected tonight (this shard)
    auditor_companies_not_collected                companies whose collection failed
    auditor_companies_skipped                      companies skipped (not to be collected)
    auditor_requests                               requests sent to Codat, retries included
    auditor_rate_limited_responses                 429 answers received
    auditor_retries                                requests that were retries
    auditor_malformed_fields{field}                fields Codat sent that could not be read
    auditor_skipped_records{kind}                  records skipped (no usable id)
    auditor_stage_duration_seconds{stage}          collect, audit (with the reports), deliver
    auditor_run_duration_seconds                   the whole run
    auditor_last_run_exit_code                     0, 1 or 2
    auditor_last_run_timestamp_seconds             when the last run finished (any exit)
    auditor_last_success_timestamp_seconds         when the last run that worked (exit 0 or 1)
                                                   finished: carried over from the previous
                                                   textfile (or left in the Pushgateway) by a
                                                   failed run, so that
                                                   ``time() - auditor_last_success_timestamp_seconds
                                                   > 26*3600`` fires when the job stops working
                                                   or stops running

Timestamps are the wall clock (``now`` is a parameter), never the audit's ``as_of``, which a
sandbox run sets in the past. The textfile is written atomically (a temporary file in the same
directory, then a rename), as the textfile collector requires. A sharded run (``--shard``)
pushes with the grouping key ``shard="K-of-N"``, so that shards do not overwrite each other.
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import default_handler, generate_latest, pushadd_to_gateway
from prometheus_client.parser import text_string_to_metric_families

from auditor.collector import StoreRun
from auditor.logs import redact, register_secret
from auditor.result import AuditResult

__all__ = [
    "LAST_SUCCESS",
    "METRICS_JOB",
    "METRICS_TEXTFILE_ENV",
    "PUSHGATEWAY_URL_ENV",
    "MetricsSettings",
    "RunFigures",
    "build_registry",
    "metrics_settings",
    "previous_last_success",
    "publish_metrics",
    "push_metrics",
    "write_textfile",
]

log = logging.getLogger("auditor.metrics")

#: The Pushgateway job name (``/metrics/job/<job>``).
METRICS_JOB: Final = "codat_freshness_auditor"
METRICS_TEXTFILE_ENV: Final = "AUDITOR_METRICS_TEXTFILE"
PUSHGATEWAY_URL_ENV: Final = "AUDITOR_PUSHGATEWAY_URL"
#: The metric an alert watches.
LAST_SUCCESS: Final = "auditor_last_success_timestamp_seconds"


@dataclass(frozen=True)
class MetricsSettings:
    """Where the metrics go: a textfile, a Pushgateway, both or neither."""

    textfile: Path | None = None
    pushgateway_url: str | None = None

    @property
    def enabled(self) -> bool:
        return self.textfile is not None or self.pushgateway_url is not None


def metrics_settings(
    *,
    textfile: Path | None,
    file_textfile: str | None,
    file_pushgateway_url: str | None,
    env: Mapping[str, str] | None = None,
) -> MetricsSettings:
    """CLI > environment > ``[run]`` for the textfile; environment > ``[run]`` for the
    Pushgateway URL (no command-line option: a secret on a command line is in ``ps``). The URL
    is registered as a secret, so that no log line shows it."""
    environ = os.environ if env is None else env
    path = (
        textfile
        or (Path(environ[METRICS_TEXTFILE_ENV]) if environ.get(METRICS_TEXTFILE_ENV) else None)
        or (Path(file_textfile) if file_textfile else None)
    )
    url = environ.get(PUSHGATEWAY_URL_ENV) or file_pushgateway_url or None
    if url:
        register_secret(url)
        parts = urlsplit(url)
        register_secret(parts.password)
    return MetricsSettings(textfile=path, pushgateway_url=url)


@dataclass(frozen=True)
class RunFigures:
    """What one run did, as the metrics need it."""

    exit_code: int
    finished_at: float
    duration_seconds: float
    result: AuditResult | None = None
    collected: StoreRun | None = None
    client_stats: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    stages: Mapping[str, float] = field(default_factory=dict)


def build_registry(figures: RunFigures, *, last_success: float | None) -> CollectorRegistry:
    """A fresh registry holding the run's metrics (see the module docstring).

    ``last_success`` is the previous successful run's time, used when this one failed; this
    run's own ``finished_at`` when it exited 0 or 1. None (a failed run, none known): the
    metric is left out, so that a Pushgateway keeps the value it has.
    """
    registry = CollectorRegistry(auto_describe=True)

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, labelnames=labels, registry=registry)

    findings = gauge(
        "auditor_findings",
        "Active findings of the last audit by rule, severity and state (resolved incidents "
        "with state=resolved).",
        ("rule", "severity", "state"),
    )
    snoozed = gauge(
        "auditor_findings_snoozed", "Snoozed findings of the last audit.", ("rule", "severity")
    )
    result = figures.result
    if result is not None:
        active = result.active
        for frame, fixed_state in ((active, None), (result.resolved, "resolved")):
            for (rule, severity, state), count in _counts(frame, fixed_state).items():
                findings.labels(rule, severity, state).set(count)
        quiet = result.findings.loc[result.findings["snoozed"].fillna(False).astype(bool)]
        for (rule, severity, _state), count in _counts(quiet, "snoozed").items():
            snoozed.labels(rule, severity).inc(count)
        gauge(
            "auditor_audit_incomplete",
            "1 when the last audit lacks a rule or a fleet-wide input (exit 2).",
        ).set(1 if result.incomplete else 0)

    collected = figures.collected
    if collected is not None:
        stats = figures.client_stats
        values = {
            "auditor_companies_collected": (
                "Companies collected by the last run.",
                collected.companies_collected,
            ),
            "auditor_companies_not_collected": (
                "Companies whose collection failed in the last run.",
                collected.companies_with_errors,
            ),
            "auditor_companies_skipped": (
                "Companies skipped by the last run.",
                collected.companies_skipped,
            ),
            "auditor_requests": (
                "Requests sent to Codat by the last run, retries included.",
                collected.requests,
            ),
            "auditor_rate_limited_responses": (
                "429 answers received by the last run.",
                int(stats.get("rate_limited", {}).get("total", 0)),
            ),
            "auditor_retries": (
                "Requests of the last run that were retries.",
                int(stats.get("retries", {}).get("total", 0)),
            ),
        }
        for name, (doc, value) in values.items():
            gauge(name, doc).set(value)
        malformed = gauge(
            "auditor_malformed_fields", "Fields Codat sent that could not be read.", ("field",)
        )
        for name, count in sorted(collected.malformed_fields.items()):
            malformed.labels(str(name)).set(count)
        skipped = gauge("auditor_skipped_records", "Records skipped: no usable id.", ("kind",))
        for name, count in sorted(collected.skipped_records.items()):
            skipped.labels(str(name)).set(count)

    stage = gauge(
        "auditor_stage_duration_seconds", "Seconds per stage of the last run.", ("stage",)
    )
    for name, seconds in figures.stages.items():
        stage.labels(name).set(seconds)
    gauge("auditor_run_duration_seconds", "Seconds the last run took.").set(
        figures.duration_seconds
    )
    gauge("auditor_last_run_exit_code", "Exit code of the last run (0, 1 or 2).").set(
        figures.exit_code
    )
    gauge("auditor_last_run_timestamp_seconds", "When the last run finished (Unix time).").set(
        figures.finished_at
    )
    success = figures.finished_at if figures.exit_code in (0, 1) else last_success
    if success is not None:
        gauge(
            LAST_SUCCESS, "When the last run that worked (exit 0 or 1) finished (Unix time)."
        ).set(success)
    return registry


def _counts(frame: Any, fixed_state: str | None) -> dict[tuple[str, str, str], int]:
    if frame.empty:
        return {}
    keys = [
        frame["rule"].astype("string").fillna(""),
        frame["severity"].astype("string").fillna(""),
    ]
    if fixed_state is None:
        keys.append(frame["state"].astype("string").fillna(""))
        grouped = frame.groupby(keys, observed=True).size()
        return {(str(r), str(s), str(st)): int(n) for (r, s, st), n in grouped.items() if n}
    grouped = frame.groupby(keys, observed=True).size()
    return {(str(r), str(s), fixed_state): int(n) for (r, s), n in grouped.items() if n}


def previous_last_success(textfile: Path) -> float | None:
    """The last-success time in an earlier textfile, if it is there and readable."""
    try:
        text = textfile.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        for family in text_string_to_metric_families(text):
            if family.name == LAST_SUCCESS and family.samples:
                return float(family.samples[0].value)
    except ValueError as exc:
        log.warning("could not read %s from %s: %s", LAST_SUCCESS, textfile, exc)
    return None


def write_textfile(registry: CollectorRegistry, path: Path) -> Path:
    """Write ``registry`` to ``path`` atomically: a temporary file in the same directory,
    then a rename (node_exporter must never read half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # The textfile collector reads only *.prom: the temporary name must not end with it.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(generate_latest(registry))
        os.chmod(tmp, 0o644)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


Handler = Callable[..., Callable[[], None]]


def _auth_handler(username: str, password: str) -> Handler:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    register_secret(token)

    def handler(
        url: str,
        method: str,
        timeout: float | None,
        headers: list[tuple[str, str]],
        data: bytes,
    ) -> Callable[[], None]:
        return default_handler(
            url, method, timeout, [*headers, ("Authorization", f"Basic {token}")], data
        )

    return handler


def push_metrics(
    registry: CollectorRegistry,
    url: str,
    *,
    job: str = METRICS_JOB,
    grouping_key: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> None:
    """POST ``registry`` to the Pushgateway at ``url`` (``/metrics/job/<job>``): metrics of
    the same name are replaced, others kept (so a failed run leaves the last-success time).
    Credentials in the URL (``https://user:pass@host``) are sent as Basic auth."""
    parts = urlsplit(url)
    handler: Handler = default_handler
    if parts.username is not None or parts.password is not None:
        handler = _auth_handler(parts.username or "", parts.password or "")
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    pushadd_to_gateway(
        url,
        job=job,
        registry=registry,
        grouping_key=dict(grouping_key or {}),
        timeout=timeout,
        handler=handler,
    )


def publish_metrics(
    settings: MetricsSettings,
    figures: RunFigures,
    *,
    shard: tuple[int, int] | None = None,
) -> bool:
    """Write the textfile and push, as ``settings`` say. Returns whether all of it worked;
    each failure is logged as an error (without the Pushgateway URL) and never raised."""
    if not settings.enabled:
        return True
    last = previous_last_success(settings.textfile) if settings.textfile else None
    registry = build_registry(figures, last_success=last)
    ok = True
    if settings.textfile is not None:
        try:
            write_textfile(registry, settings.textfile)
            log.info("metrics written to %s", settings.textfile)
        except OSError as exc:
            ok = False
            log.error("could not write the metrics textfile %s: %s", settings.textfile, exc)
    if settings.pushgateway_url is not None:
        key = {"shard": f"{shard[0]}-of-{shard[1]}"} if shard else None
        try:
            push_metrics(registry, settings.pushgateway_url, grouping_key=key)
            log.info("metrics pushed to the Pushgateway")
        except Exception as exc:  # any failure to push is logged, never the run's
            ok = False
            log.error("could not push the metrics: %s", redact(f"{type(exc).__name__}: {exc}"))
    return ok
