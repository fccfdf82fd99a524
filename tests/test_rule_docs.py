"""Rule docs: summaries are plain text (CLI table, report: no reStructuredText markup); every
option is described; ``auditor rules NAME`` prints the options as TOML that loads back; and
``docs/rules.md`` is what the generator gives (it fails when the file drifts)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from auditor.cli import app
from auditor.cli.rules_cmd import OPTIONS_HEADING
from auditor.config import load_config
from auditor.rules import RULES, Rule, get_rule
from auditor.rules._docs import options_toml, rules_markdown


def test_summaries_are_plain_one_line_sentences() -> None:
    for rule in RULES:
        assert rule.summary, rule.name
        assert "``" not in rule.summary, rule.name
        assert "\n" not in rule.summary, rule.name
        assert rule.summary.endswith("."), rule.name


# --- options: described, printed as TOML that loads back; docs/rules.md generated -----------

DOCS = Path(__file__).resolve().parents[1] / "docs" / "rules.md"


def _models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """``model`` and the models its fields hold (``dict[str, Thresholds]`` and the like)."""
    found = [model]
    for info in model.model_fields.values():
        for arg in (info.annotation, *get_args(info.annotation)):
            for inner in (arg, *get_args(arg)):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    found += _models(inner)
    return found


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_every_option_has_a_description(rule: Rule) -> None:
    for model in _models(rule.options_model):
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no Field(description=...)"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_options_toml_parses_and_loads_back_as_the_defaults(rule: Rule, tmp_path: Path) -> None:
    text = options_toml(rule)
    data = tomllib.loads(text)
    assert list(data["rules"]) == [rule.name]
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    assert load_config(path).rule_options(rule) == rule.options_model()


def test_options_toml_writes_the_help_and_the_defaults() -> None:
    text = options_toml(get_rule("cross-type-skew"))
    assert "[rules.cross-type-skew]\n" in text
    assert "# Run this rule.\nenabled = true\n" in text
    assert "warn_after = 6.0\n" in text
    assert "[rules.cross-type-skew.groups.cash]\n" in text
    assert 'members = ["bankAccounts", "bankTransactions"' in text


def test_cli_prints_a_rules_options_as_toml(tmp_path: Path) -> None:
    runner = CliRunner()
    for name in ("stale", "FA102", "provider-incident"):
        result = runner.invoke(app, ["rules", name])
        assert result.exit_code == 0, result.output
        toml_text = result.output.split(OPTIONS_HEADING, 1)[1]
        path = tmp_path / "config.toml"
        path.write_text(toml_text, encoding="utf-8")
        rule = get_rule(name)
        assert tomllib.loads(toml_text)["rules"][rule.name]["enabled"] is True
        assert load_config(path).rule_options(rule) == rule.options_model()
    every = runner.invoke(app, ["rules", "--toml"])
    assert every.exit_code == 0, every.output
    assert list(tomllib.loads(every.output)["rules"]) == [r.name for r in RULES]


def test_docs_rules_md_is_generated_from_the_registry() -> None:
    expected = rules_markdown()
    assert DOCS.read_text(encoding="utf-8") == expected, (
        "docs/rules.md is out of date: run `auditor rules --markdown > docs/rules.md`"
    )
    result = CliRunner().invoke(app, ["rules", "--markdown"])
    assert result.exit_code == 0, result.output
    assert result.output == expected


def test_docs_rules_md_has_every_rule_and_option() -> None:
    text = rules_markdown()
    for rule in RULES:
        assert f"## {rule.name} ({rule.code})" in text
        for name in rule.options_model.model_fields:
            assert name in text, (rule.name, name)


def test_per_tag_thresholds_print_as_toml_that_loads_back(tmp_path: Path) -> None:
    """``tags.<tag>.<value>`` (a table of tables) prints as nested TOML tables that load back."""
    from auditor.rules._docs import _table
    from auditor.rules.stale import StaleOptions

    options = StaleOptions(
        tags={
            "tier": {
                "gold": {"warn_after": 12, "data_types": {"invoices": {"warn_after": 6}}},
                "silver lining": {"error_after": 100},
            },
            "region": {"eu": {"platforms": {"Sage 50 (UK)": {"warn_after": 3}}}},
        }
    )
    text = "\n".join(_table("rules.stale", options)) + "\n"
    assert "[rules.stale.tags.tier.gold]\nenabled" not in text
    assert "[rules.stale.tags.tier.gold]\n" in text
    assert '[rules.stale.tags.tier."silver lining"]\n' in text
    assert "[rules.stale.tags.tier.gold.data_types.invoices]\n" in text
    assert '[rules.stale.tags.region.eu.platforms."Sage 50 (UK)"]\n' in text
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    assert load_config(path).rule_options(get_rule("stale")) == options
