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
``[email]``         the email digest: recipients, routing, limits
                    (:class:`~auditor.email_settings.EmailSettings`)
``[run]``           the nightly job: store, out, base_url, snoozes, rate_limit, max_attempts,
                    timeout (command-line options and environment variables win)

Older spellings, still accepted and folded into the rules' tables when the file loads:
top-level ``expected_data_types`` (now ``[rules.never-synced] expected_data_types``),
``replace_default_groups`` and ``[groups] name = [members]`` (now
``[rules.cross-type-skew] replace_default_groups`` and
``[rules.cross-type-skew.groups.<name>] members = [...]``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
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

from auditor.email_settings import EmailSettings
from auditor.rules import RULES, Rule, RuleOptions, get_rule
from auditor.rules.cross_type_skew import SkewOptions

__all__ = [
    "AuditConfig",
    "ConfigError",
    "FailOn",
    "RulesConfig",
    "RunConfig",
    "format_validation_error",
    "load_config",
    "locate_key",
    "parse_toml",
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
    """The ``[run]`` table: where and how the nightly job (``auditor run``) works.

    Command-line options and environment variables win over these; paths are taken as
    written (relative ones from the working directory).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Snapshot store directory.
    store: str | None = None
    #: Where report.html, the CSVs and .eml files go.
    out: str | None = None
    #: Codat API base URL.
    base_url: str | None = None
    #: Snooze file (TOML).
    snoozes: str | None = None
    #: Client-side limit, requests per minute (Codat allows 1,000 per IP); 0 = no limit.
    rate_limit: float | None = Field(default=None, ge=0)
    #: Attempts per request, the first included (1 = no retries).
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    #: Seconds before a request times out.
    timeout: float | None = Field(default=None, gt=0)


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
    #: The email digest's recipients and routing, validated when the file loads (so that a
    #: typo in ``[email]`` fails then, with its line, not when tonight's digest is built).
    email: EmailSettings = Field(default_factory=EmailSettings)
    #: Settings of the nightly job.
    run: RunConfig = Field(default_factory=RunConfig)

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


def format_validation_error(exc: ValidationError, text: str, source: str) -> list[str]:
    """One line per problem: ``source:line: dotted.key: message``."""
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function")))
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key (check its spelling and section; see config.example.toml)"
        elif "input" in err and err["type"] not in {"missing"} and not isinstance(
            err["input"], dict | list
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
