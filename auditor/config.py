"""The audit's configuration: a TOML file validated by pydantic (see ``config.example.toml``).

``AuditConfig()`` is the default configuration and needs no file. :func:`load_config` reads a
TOML file and raises :class:`ConfigError` naming the file, the line (where it can be found) and
the dotted key of every problem, e.g.::

    config.toml:12: rules.stale.warn_after: Input should be greater than or equal to 0

Sections
--------
top level           ``timezone`` (display only; all computation is UTC), ``fail_on``
``[rules]``         ``select``/``ignore`` (rule names or codes, ``"all"``), then one table per
                    rule, by name or code: ``enabled``, ``severity`` and the rule's own options
                    (``auditor rules NAME`` prints them as TOML); a rule reads nothing else
``[monitoring]``    what every rule leaves out (connections Deauthorized by design), handed to
                    the rules as data (``RuleContext.monitoring``)
``[email]``         the email digest: recipients, routing, limits
                    (:class:`~auditor.email_settings.EmailSettings`)
``[notify]``        Slack, Teams and JSON webhook notifications, routed like email
                    (:class:`~auditor.notify_settings.NotifySettings`)
``[run]``           where and how the commands work: store, out, base_url, snoozes, rate_limit,
                    max_attempts, timeout, quota_reserve, quota_retry_after_bound.
                    :func:`run_settings` merges them with the command line and the
                    environment: CLI > environment variable > ``[run]`` > default
                    (the defaults and variable names are :data:`RUN_DEFAULTS` and
                    :data:`ENV_VARS`, defined here once)

Older spellings, still accepted and folded into the rules' tables when the file loads:
top-level ``expected_data_types`` (now ``[rules.never-synced] expected_data_types``),
``replace_default_groups`` and ``[groups] name = [members]`` (now
``[rules.cross-type-skew] replace_default_groups`` and
``[rules.cross-type-skew.groups.<name>] members = [...]``).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from auditor.codat import DEFAULT_BASE_URL
from auditor.email_settings import EmailSettings
from auditor.notify_settings import NotifySettings
from auditor.rules import RULES, Rule, RuleOptions, get_rule
from auditor.rules._base import Monitoring
from auditor.rules.cross_type_skew import SkewOptions
from auditor.store._fs import StoreDir, store_root

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_QUOTA_RESERVE",
    "DEFAULT_QUOTA_RETRY_AFTER_BOUND",
    "DEFAULT_RATE_LIMIT",
    "DEFAULT_STORE",
    "DEFAULT_TIMEOUT",
    "ENV_VARS",
    "RUN_DEFAULTS",
    "AuditConfig",
    "ConfigError",
    "FailOn",
    "ReportConfig",
    "RulesConfig",
    "RunConfig",
    "RunSettings",
    "format_validation_error",
    "load_config",
    "locate_key",
    "parse_toml",
    "run_settings",
]

FailOn = Literal["never", "new-error", "error", "new-warning", "warning"]


class ConfigError(ValueError):
    """A configuration (or snooze) file is invalid. The message lists every problem."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[str, ...] = tuple(problems)


def _field_name(rule_name: str) -> str:
    return rule_name.replace("-", "_")


class _RulesBase(BaseModel):
    """``[rules]``: which rules run, and one options table per rule."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    select: list[str] = Field(default_factory=lambda: ["all"])
    ignore: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _codes_to_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out: dict[str, Any] = {}
        for key, value in data.items():
            try:
                out[get_rule(key).name] = value
            except KeyError:
                out[key] = value
        return out

    @field_validator("select", "ignore")
    @classmethod
    def _known_rules(cls, value: list[str]) -> list[str]:
        names = []
        for item in value:
            if item == "all":
                names.append(item)
                continue
            try:
                names.append(get_rule(item).name)
            except KeyError:
                known = ", ".join(r.name for r in RULES)
                raise ValueError(f"unknown rule {item!r}; known rules: all, {known}") from None
        return names

    def options(self, rule: Rule) -> RuleOptions:
        """The validated options of ``rule`` (its defaults for a rule outside the registry)."""
        value = getattr(self, _field_name(rule.name), None)
        if value is None:
            return rule.options_model()
        assert isinstance(value, RuleOptions)
        return value

    def is_selected(self, rule: Rule) -> bool:
        """Whether ``rule`` runs: selected, not ignored, and ``enabled``."""
        selected = "all" in self.select or rule.name in self.select
        return selected and rule.name not in self.ignore and self.options(rule).enabled


if TYPE_CHECKING:
    RulesConfig = _RulesBase
else:
    RulesConfig = create_model(
        "RulesConfig",
        __base__=_RulesBase,
        **{
            _field_name(r.name): (
                r.options_model,
                Field(default_factory=r.options_model, alias=r.name),
            )
            for r in RULES
        },
    )


class RunConfig(BaseModel):
    """The ``[run]`` table: where and how the commands (``auditor run`` and the others that
    take ``--config``) work.

    Command-line options and environment variables win over these (:func:`run_settings`);
    paths are taken as written (relative ones from the working directory).
    """

    # inf/nan validate as floats but can never work (``rate_limit = inf`` crashed the run after
    # the report was written): refused at load.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    #: Snapshot store directory.
    store: str | None = None
    #: Where report.html, the CSVs and .eml files go.
    out: str | None = None
    #: Codat API base URL.
    base_url: str | None = None
    #: Snooze file (TOML).
    snoozes: str | None = None
    #: Client-side limit, requests per minute (Codat allows 1,000 per IP); 0 = no limit.
    rate_limit: float | None = Field(default=None, ge=0, le=1_000_000)
    #: Attempts per request, the first included (1 = no retries).
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    #: Seconds before a request times out.
    timeout: float | None = Field(default=None, gt=0, le=3600)
    #: Share of Codat's daily quota (``X-Rate-Limit-Limit``) left for the customer's own
    #: application: the snapshot stops before going below it (0.10 = 10 %).
    quota_reserve: float | None = Field(default=None, ge=0, lt=1)
    #: A 429 whose Retry-After is longer than this means the daily quota is spent: the
    #: snapshot stops at once (seconds, or a duration such as ``"5m"``).
    quota_retry_after_bound: float | str | None = None
    #: ``auditor run``: Prometheus metrics file for node_exporter's textfile collector
    #: (``--metrics-textfile`` / ``AUDITOR_METRICS_TEXTFILE`` win; see :mod:`auditor.metrics`).
    metrics_textfile: str | None = None
    #: ``auditor run``: Pushgateway URL the metrics are also pushed to (a secret: it may hold
    #: credentials; ``AUDITOR_PUSHGATEWAY_URL`` wins).
    pushgateway_url: str | None = None
    #: ``auditor run``: heartbeat (dead man's switch) URL pinged at start, success and failure,
    #: healthchecks.io style (a secret: ``AUDITOR_HEARTBEAT_URL`` wins; see
    #: :mod:`auditor.heartbeat`).
    heartbeat_url: str | None = None
    #: Read each company's own sync settings once every N nights (a rolling slice of the
    #: fleet, +1/N request per company per night); 1: every night, 0: never. Default 7.
    company_settings_every_days: int | None = Field(default=None, ge=0, le=366)

    @field_validator("quota_retry_after_bound")
    @classmethod
    def _duration(cls, value: float | str | None) -> float | None:
        return None if value is None else parse_duration(value)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else check_base_url(value)

    @field_validator("pushgateway_url", "heartbeat_url")
    @classmethod
    def _secret_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            check_base_url(value)
        except ValueError:  # never echo the value: it may hold credentials
            raise ValueError("not an http(s) URL (value not shown: it may hold a secret)") from None
        return value


_UNITS: Final[Mapping[str, float]] = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(value: float | str) -> float:
    """Seconds from a number of seconds or a duration (``"90s"``, ``"5m"``, ``"1h"``);
    ``ValueError`` unless it is from 0 to a day."""
    text = str(value).strip().lower()
    unit = next((u for u in ("min", "s", "m", "h") if text.endswith(u)), "")
    try:
        seconds = float(text[: len(text) - len(unit)].strip()) * _UNITS.get(unit, 1.0)
    except ValueError:
        raise ValueError(f"not a duration (seconds, or e.g. '5m'): {value!r}") from None
    if not 0 <= seconds <= 86_400:  # also refuses nan and inf
        raise ValueError(f"a duration from 0 to 24h is needed, got {value!r}")
    return seconds


def check_base_url(value: str) -> str:
    """``value`` if it is an ``http(s)://host[...]`` URL on one line (else ``ValueError``)."""
    parsed = urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or any(
        c.isspace() or ord(c) < 0x20 for c in value
    ):
        raise ValueError(
            f"not an http(s) URL: {value[:80]!r} (e.g. https://api.codat.io or "
            "http://127.0.0.1:28222 for a sandbox)"
        )
    return value


#: Snapshot store directory when neither ``--store``, ``AUDITOR_STORE`` nor ``run.store`` say.
DEFAULT_STORE: Final = "store"
#: Client-side rate limit, requests per minute (Codat allows 1,000 per IP).
DEFAULT_RATE_LIMIT: Final = 1000.0
#: Seconds before a request to Codat times out.
DEFAULT_TIMEOUT: Final = 30.0
#: Share of the daily quota kept for the customer's own application.
DEFAULT_QUOTA_RESERVE: Final = 0.10
#: A 429 asking to wait longer than this (seconds) means the daily quota is spent.
DEFAULT_QUOTA_RETRY_AFTER_BOUND: Final = 300.0

#: The defaults of the settings :func:`run_settings` resolves (``out`` depends on the command).
RUN_DEFAULTS: Final[Mapping[str, object]] = {
    "store": DEFAULT_STORE,
    "base_url": DEFAULT_BASE_URL,
    "rate_limit": DEFAULT_RATE_LIMIT,
    "timeout": DEFAULT_TIMEOUT,
    "quota_reserve": DEFAULT_QUOTA_RESERVE,
    "quota_retry_after_bound": DEFAULT_QUOTA_RETRY_AFTER_BOUND,
}

#: The environment variable of each setting that has one (the CLI options declare the same).
ENV_VARS: Final[Mapping[str, str]] = {
    "config": "AUDITOR_CONFIG",
    "store": "AUDITOR_STORE",
    "out": "AUDITOR_OUT",
    "base_url": "CODAT_BASE_URL",
    "snoozes": "AUDITOR_SNOOZES",
    "rate_limit": "AUDITOR_RATE_LIMIT",
    "quota_reserve": "AUDITOR_QUOTA_RESERVE",
    "quota_retry_after_bound": "AUDITOR_QUOTA_RETRY_AFTER_BOUND",
    "log_format": "AUDITOR_LOG_FORMAT",
    "progress": "AUDITOR_PROGRESS",
}


@dataclass(frozen=True)
class RunSettings:
    """The ``[run]`` settings resolved: CLI > environment > config file > default."""

    #: A local directory, or an object store (``s3://bucket/prefix``: :mod:`auditor.store._fs`).
    store: StoreDir
    #: Where the reports go; None when the command was given no default for it.
    out: Path | None
    base_url: str
    snoozes: Path | None
    #: Requests per minute; None: no limit (``0`` on the command line or in the file).
    rate_limit: float | None
    #: Attempts per request; None: the client's default.
    max_attempts: int | None
    timeout: float
    #: Share of the daily quota left for the customer's own application.
    quota_reserve: float = DEFAULT_QUOTA_RESERVE
    #: Seconds: a 429 asking to wait longer means the daily quota is spent.
    quota_retry_after_bound: float = DEFAULT_QUOTA_RETRY_AFTER_BOUND


def _pick(
    name: str, given: object, env: Mapping[str, str], file_value: object, default: object
) -> object:
    """The first of: ``given`` (the command line), the environment variable, the file's
    value, ``default``; None and empty strings count as not set."""
    if given is not None and given != "":
        return given
    var = ENV_VARS.get(name)
    if var is not None and env.get(var, ""):
        return env[var]
    return file_value if file_value is not None else default


def run_settings(
    config: RunConfig | AuditConfig | None = None,
    *,
    store: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    snoozes: str | os.PathLike[str] | None = None,
    rate_limit: float | None = None,
    default_out: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    quota_reserve: float | None = None,
    quota_retry_after_bound: float | str | None = None,
) -> RunSettings:
    """The settings a command runs with: each keyword (the command line; None: not given)
    wins over its environment variable (:data:`ENV_VARS`, read from ``env``, default
    ``os.environ``), which wins over the config file's ``[run]`` table, which wins over the
    default (:data:`RUN_DEFAULTS`; ``default_out`` for ``out``, which differs by command).

    A rate limit of 0 means no limit (``rate_limit`` None in the result). Raises
    :class:`ConfigError` when an environment variable cannot be read (e.g. a rate limit
    that is not a number).
    """
    run = config.run if isinstance(config, AuditConfig) else (config or RunConfig())
    environ = os.environ if env is None else env

    def path(name: str, given: object, file_value: str | None, default: object) -> Path | None:
        value = _pick(name, given, environ, file_value, default)
        return None if value is None else Path(str(value))

    limit = _pick("rate_limit", rate_limit, environ, run.rate_limit, DEFAULT_RATE_LIMIT)
    try:
        requests_per_minute = float(str(limit))
    except ValueError:
        var = ENV_VARS["rate_limit"]
        raise ConfigError(f"{var}: not a number of requests per minute: {limit!r}") from None
    if not 0 <= requests_per_minute <= 1_000_000:  # also refuses nan and inf
        raise ConfigError(
            f"rate limit must be a number of requests per minute from 0 (no limit) to "
            f"1,000,000, got {requests_per_minute:g}"
        )
    reserve_value = _pick(
        "quota_reserve", quota_reserve, environ, run.quota_reserve, DEFAULT_QUOTA_RESERVE
    )
    try:
        reserve = float(str(reserve_value))
    except ValueError:
        reserve = -1.0
    if not 0 <= reserve < 1:  # also refuses nan and inf
        raise ConfigError(
            f"quota reserve must be a fraction of the daily quota from 0 to below 1 "
            f"(0.10 = 10 %), got {reserve_value!r}"
        )
    bound_value = _pick(
        "quota_retry_after_bound",
        quota_retry_after_bound,
        environ,
        run.quota_retry_after_bound,
        DEFAULT_QUOTA_RETRY_AFTER_BOUND,
    )
    try:
        bound = parse_duration(str(bound_value))
    except ValueError as exc:
        raise ConfigError(f"quota Retry-After bound: {exc}") from None
    store_path = store_root(str(_pick("store", store, environ, run.store, DEFAULT_STORE)))
    url = str(_pick("base_url", base_url, environ, run.base_url, DEFAULT_BASE_URL))
    try:
        check_base_url(url)
    except ValueError as exc:
        raise ConfigError(f"base URL: {exc}") from None
    return RunSettings(
        store=store_path,
        out=path("out", out, run.out, default_out),
        base_url=url,
        snoozes=path("snoozes", snoozes, run.snoozes, None),
        rate_limit=requests_per_minute or None,
        max_attempts=run.max_attempts,
        timeout=run.timeout if run.timeout is not None else DEFAULT_TIMEOUT,
        quota_reserve=reserve,
        quota_retry_after_bound=bound,
    )


class EventsConfig(BaseModel):
    """The ``[events]`` table: the webhook event log (``auditor listen``) the audit reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: A listener writes into this store: a missing ``STORE/events`` is said in the report
    #: ("no event log") instead of silently meaning "no webhooks used".
    expected: bool = False
class ReportConfig(BaseModel):
    """The ``[report]`` table: what the HTML report shows (display only, never the findings)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    freshness_target: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description=(
            "Fleet freshness SLA target: the share of monitored company x data types that "
            "should be fresh each night (0.95 = 95 %), in (0, 1]; drawn as a line on the "
            "report's trend and compared with tonight's figure. See docs/reports.md."
        ),
    )


class AuditConfig(BaseModel):
    """The whole configuration. Every field has a default; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Time zone in which reports display times. Computation is always UTC.
    timezone: str = "UTC"
    #: Which findings make ``auditor run`` exit non-zero (used by the run command).
    fail_on: FailOn = "new-error"
    #: Older spelling of ``[rules.never-synced] expected_data_types`` (folded into it on load).
    expected_data_types: list[str] = Field(default_factory=list)
    #: Older spelling of ``[rules.cross-type-skew] replace_default_groups`` (folded on load).
    replace_default_groups: bool = False
    #: Older spelling of ``[rules.cross-type-skew.groups.<name>] members`` (folded on load).
    groups: dict[str, list[str]] = Field(default_factory=dict)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    #: What monitoring leaves out, read by every rule (connections Deauthorized by design).
    monitoring: Monitoring = Field(default_factory=Monitoring)
    #: The email digest's recipients and routing, validated when the file loads (so that a
    #: typo in ``[email]`` fails then, with its line, not when tonight's digest is built).
    email: EmailSettings = Field(default_factory=EmailSettings)
    #: Slack / Teams / JSON webhook notifications (``[[notify.slack]]`` ...), validated on load.
    notify: NotifySettings = Field(default_factory=NotifySettings)
    #: Settings of the nightly job.
    run: RunConfig = Field(default_factory=RunConfig)
    #: The webhook event log (``auditor listen``).
    events: EventsConfig = Field(default_factory=EventsConfig)
    #: What the HTML report shows (the freshness target line).
    report: ReportConfig = Field(default_factory=ReportConfig)

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as "
                             "'Europe/London' or 'UTC')") from None
        return value

    @field_validator("groups")
    @classmethod
    def _valid_groups(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, members in value.items():
            if len(members) == 1:
                raise ValueError(f"group {name!r} needs at least two members (or [] to remove it)")
            if len(set(members)) != len(members):
                raise ValueError(f"group {name!r} lists a member twice")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _fold_older_spellings(
        cls, data: Any, handler: ModelWrapValidatorHandler[AuditConfig]
    ) -> AuditConfig:
        """Validate, then move the older top-level rule settings into the rules' tables."""
        config = handler(data)
        if not isinstance(data, dict) or not (
            config.expected_data_types or config.replace_default_groups or config.groups
        ):
            return config
        rules = dict(data.get("rules") or {})
        if config.expected_data_types:
            key, table = _rule_table(rules, "never-synced")
            written = list(table.get("expected_data_types") or [])
            both = list(dict.fromkeys([*config.expected_data_types, *written]))
            rules[key] = {**table, "expected_data_types": both}
        if config.replace_default_groups or config.groups:
            key, table = _rule_table(rules, "cross-type-skew")
            if config.replace_default_groups:
                table.setdefault("replace_default_groups", True)
            groups = {name: {"members": members} for name, members in config.groups.items()}
            for name, written in dict(table.get("groups") or {}).items():
                base = groups.get(name)
                merge = base is not None and isinstance(written, dict)
                groups[name] = {**(base or {}), **written} if merge else written
            rules[key] = {**table, "groups": groups}
        older = ("expected_data_types", "replace_default_groups", "groups")
        return handler({**{k: v for k, v in data.items() if k not in older}, "rules": rules})

    @property
    def consistency_groups(self) -> dict[str, tuple[str, ...]]:
        """The groups ``cross-type-skew`` checks (its ``groups`` option: defaults + configured)."""
        options = self.rule_options("cross-type-skew")
        assert isinstance(options, SkewOptions)
        return options.consistency_groups

    def rule_options(self, rule: Rule | str) -> RuleOptions:
        """Validated options of a rule (by object, name or code)."""
        return self.rules.options(get_rule(rule) if isinstance(rule, str) else rule)

    def enabled_rules(self) -> tuple[Rule, ...]:
        """The rules that run, in registry order."""
        return tuple(r for r in RULES if self.rules.is_selected(r))


def _rule_table(rules: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    """(the key of rule ``name``'s table in a raw ``[rules]`` table, a copy of that table)."""
    rule = get_rule(name)
    for key, value in rules.items():
        if key in (rule.name, rule.code, rule.code.lower()) and isinstance(value, dict):
            return key, dict(value)
    return rule.name, {}


# --- errors that point at the file ------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_PART = r"""(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)"""
_KEY = re.compile(rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")


def _split_key(text: str) -> tuple[str, ...]:
    parts = re.findall(r""""([^"]*)"|'([^']*)'|([A-Za-z0-9_\-]+)""", text)
    return tuple(a or b or c for a, b, c in parts)


def locate_key(text: str, loc: Iterable[str | int]) -> int | None:
    """The 1-based line of ``text`` (TOML) that best matches the key path ``loc``."""
    target = tuple(str(p) for p in loc)
    table: tuple[str, ...] = ()
    array_counts: dict[tuple[str, ...], int] = {}
    best_line, best_score = None, 0
    for number, line in enumerate(text.splitlines(), start=1):
        path: tuple[str, ...] | None = None
        header = _HEADER.match(line)
        if header:
            keys = _split_key(header.group(2))
            if header.group(1) == "[[":
                index = array_counts.get(keys, -1) + 1
                array_counts[keys] = index
                table = (*keys, str(index))
            else:
                table = keys
            path = table
        else:
            key = _KEY.match(line)
            if key:
                path = (*table, *_split_key(key.group(1)))
        if path is None:
            continue
        score = 0
        for a, b in zip(path, target, strict=False):
            if a != b and a.replace("-", "_") != b.replace("-", "_"):
                break
            score += 1
        if score == len(path) and score > best_score:
            best_line, best_score = number, score
    return best_line


#: Keys whose value is never echoed in an error (it may hold credentials).
_SECRET_KEYS: Final = frozenset({("pushgateway_url",), ("heartbeat_url",)})


def format_validation_error(exc: ValidationError, text: str, source: str) -> list[str]:
    """One line per problem: ``source:line: dotted.key: message``."""
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function")))
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key (check its spelling and section; see config.example.toml)"
        elif (
            "input" in err
            and err["type"] not in {"missing"}
            and not isinstance(err["input"], dict | list)
            and loc[-1:] not in _SECRET_KEYS
        ):
            message = f"{message} (got {err['input']!r})"
        line = locate_key(text, loc) if loc else None
        where = f"{source}:{line}" if line else source
        problems.append(f"{where}: {dotted}: {message}")
    return problems


def parse_toml(path: Path) -> tuple[dict[str, Any], str]:
    """Read a TOML file; a syntax error becomes a :class:`ConfigError` with its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}", [str(exc)]) from None


def load_config(path: str | Path | None) -> AuditConfig:
    """Read and validate a TOML config file (``None``: the defaults)."""
    if path is None:
        return AuditConfig()
    path = Path(path)
    data, text = parse_toml(path)
    try:
        return AuditConfig.model_validate(data)
    except ValidationError as exc:
        problems = format_validation_error(exc, text, str(path))
        raise ConfigError(
            f"invalid configuration in {path}:\n  " + "\n  ".join(problems), problems
        ) from None
