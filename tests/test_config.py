"""Configuration: defaults, the example file, and errors that name the key and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.config import AuditConfig, ConfigError, load_config, locate_key
from auditor.email_settings import EmailSettings
from auditor.rules import RULES, get_rule
from auditor.rules.cross_type_skew import DEFAULT_GROUPS, SkewOptions
from auditor.rules.never_synced import NeverSyncedOptions
from auditor.rules.stale import StaleOptions

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_need_no_file() -> None:
    config = AuditConfig()
    assert load_config(None) == config
    assert config.enabled_rules() == RULES
    assert config.consistency_groups == DEFAULT_GROUPS
    assert config.fail_on == "new-error"
    assert config.timezone == "UTC"
    assert config.email == EmailSettings()


def test_the_example_config_is_valid() -> None:
    config = load_config(ROOT / "config.example.toml")
    stale = config.rule_options("stale")
    assert isinstance(stale, StaleOptions)
    assert stale.data_types["bankTransactions"].warn_after == 24
    assert stale.platforms["QuickBooks Desktop"].warn_after == 72  # "3d"
    assert config.consistency_groups["sales"] == ("salesOrders", "invoices", "customers")


def test_selection_by_name_or_code_and_ignore(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[rules]\nselect = ["FA101", "needs-relink", "unknown-status"]\nignore = ["FA401"]\n',
    )
    names = [r.name for r in load_config(path).enabled_rules()]
    assert names == ["stale", "needs-relink"]


def test_rule_tables_by_code_and_disable(tmp_path: Path) -> None:
    path = _write(tmp_path, "[rules.FA102]\nwarn_after = 12\n[rules.stale]\nenabled = false\n")
    config = load_config(path)
    assert config.rule_options("cross-type-skew").warn_after == 12  # type: ignore[attr-defined]
    assert get_rule("stale") not in config.enabled_rules()


def test_groups_add_change_remove(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[groups]\ncash = []\naccounts-payable = ["bills", "suppliers"]\nnew = ["a", "b"]\n',
    )
    groups = load_config(path).consistency_groups
    assert "cash" not in groups
    assert groups["accounts-payable"] == ("bills", "suppliers")
    assert groups["new"] == ("a", "b")
    text = 'replace_default_groups = true\n[groups]\nx = ["a", "b"]\n'
    replaced = load_config(_write(tmp_path, text))
    assert replaced.consistency_groups == {"x": ("a", "b")}


def test_groups_and_expected_types_are_options_of_their_rules(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "[rules.cross-type-skew.groups.cash]\nmembers = []\n"
        '[rules.cross-type-skew.groups.accounts-payable]\nmembers = ["bills", "suppliers"]\n'
        "warn_after = 3\n"
        '[rules.cross-type-skew.groups.new]\nmembers = ["a", "b"]\n'
        "[rules.cross-type-skew.groups.accounts-receivable]\nerror_after = 12\n"
        '[rules.never-synced]\nexpected_data_types = ["bills"]\n',
    )
    config = load_config(path)
    groups = config.consistency_groups
    assert "cash" not in groups
    assert groups["accounts-payable"] == ("bills", "suppliers")
    assert groups["new"] == ("a", "b")
    assert groups["accounts-receivable"] == DEFAULT_GROUPS["accounts-receivable"]
    skew = config.rule_options("cross-type-skew")
    assert isinstance(skew, SkewOptions)
    assert skew.groups["accounts-payable"].warn_after == 3
    assert skew.groups["accounts-receivable"].error_after == 12
    never = config.rule_options("never-synced")
    assert isinstance(never, NeverSyncedOptions)
    assert never.expected_data_types == ["bills"]
    replaced = load_config(
        _write(
            tmp_path,
            "[rules.FA102]\nreplace_default_groups = true\n"
            '[rules.FA102.groups.x]\nmembers = ["a", "b"]\n',
        )
    )
    assert replaced.consistency_groups == {"x": ("a", "b")}


def test_older_top_level_spellings_give_the_same_rule_options(tmp_path: Path) -> None:
    older = load_config(
        _write(
            tmp_path,
            'expected_data_types = ["bills"]\nreplace_default_groups = true\n'
            '[groups]\nx = ["a", "b"]\n[rules.cross-type-skew.groups.x]\nwarn_after = 2\n',
        )
    )
    newer = load_config(
        _write(
            tmp_path,
            '[rules.never-synced]\nexpected_data_types = ["bills"]\n'
            "[rules.cross-type-skew]\nreplace_default_groups = true\n"
            '[rules.cross-type-skew.groups.x]\nmembers = ["a", "b"]\nwarn_after = 2\n',
        )
    )
    for rule in ("never-synced", "cross-type-skew"):
        assert older.rule_options(rule) == newer.rule_options(rule)
    assert older.consistency_groups == {"x": ("a", "b")}


def test_a_group_of_one_names_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, '[rules.cross-type-skew.groups.solo]\nmembers = ["invoices"]\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}:2: rules.cross-type-skew.groups.solo.members:" in str(info.value)
    assert "at least two members" in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('timezone = "UTC"\n\n[rules.stale]\nwarn_after = "soon"\n',
         ["config.toml:4: rules.stale.warn_after:", "'soon' is not a duration"]),
        ("[rules.stale]\nwarn_after = -5\n",
         ["config.toml:2: rules.stale.warn_after:", "greater than or equal to 0"]),
        ("[rules.stal]\nwarn_after = 5\n",
         ["config.toml:1: rules.stal: unknown key"]),
        ("[rules.stale]\nwarn_afterr = 5\n",
         ["config.toml:2: rules.stale.warn_afterr: unknown key"]),
        ('[rules]\nselect = ["stael"]\n',
         ["config.toml:2: rules.select:", "unknown rule 'stael'"]),
        ('timezone = "Mars/Olympus"\n', ["config.toml:1: timezone:", "unknown time zone"]),
        ('fail_on = "sometimes"\n', ["config.toml:1: fail_on:", "'new-error'"]),
        ('[groups]\nsolo = ["invoices"]\n', ["config.toml:1: groups:", "at least two members"]),
        ("[rules.stale.data_types.invoices]\nwarn_after = true\n",
         ["config.toml:2: rules.stale.data_types.invoices.warn_after"]),
        ("[rules.provider-incident]\nmin_percent = 150\n",
         ["config.toml:2: rules.provider-incident.min_percent:", "less than or equal to 100"]),
        ("colour = 'blue'\n", ["config.toml:1: colour: unknown key"]),
    ],
)
def test_errors_name_the_key_and_line(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    for part in expected:
        assert part.replace("config.toml", str(path)) in message


def test_invalid_toml_gives_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "[rules.stale]\nwarn_after = = 3\n")
    with pytest.raises(ConfigError, match=r"invalid TOML: .*line 2"):
        load_config(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


def test_email_is_typed_and_the_report_table_holds_only_what_is_read(tmp_path: Path) -> None:
    path = _write(tmp_path, '[email]\nto = ["ops@example.com"]\n')
    config = load_config(path)
    assert config.email == EmailSettings(to=["ops@example.com"])
    path = _write(tmp_path, '[email]\nto = ["ops@example.com"]\n[report]\nx = "y"\n')
    with pytest.raises(ConfigError, match=r"config.toml:4: report.x: unknown key"):
        load_config(path)
    path = _write(tmp_path, "[report]\nfreshness_target = 0.9\n")
    assert load_config(path).report.freshness_target == 0.9
    path = _write(tmp_path, "[report]\nfreshness_target = 95\n")
    with pytest.raises(ConfigError, match=r"config.toml:2: report.freshness_target"):
        load_config(path)


def test_locate_key_handles_array_tables_and_dotted_keys() -> None:
    text = '[[snoozes]]\nrule = "a"\n\n[[snoozes]]\nrule = "b"\nuntil = 1\n[x]\ny.z = 2\n'
    assert locate_key(text, ("snoozes", 1, "until")) == 6
    assert locate_key(text, ("snoozes", 0, "rule")) == 2
    assert locate_key(text, ("x", "y", "z")) == 8
    assert locate_key(text, ("nothing",)) is None


def test_email_and_run_tables_are_validated_at_load_time(tmp_path: Path) -> None:
    path = tmp_path / "auditor.toml"
    path.write_text(
        '[email]\ntoo = ["ops@example.com"]\n\n[run]\nrate_limit = -1\nstore = "s"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "auditor.toml:2: email.too" in text
    assert "auditor.toml:5: run.rate_limit" in text


def test_the_example_config_loads() -> None:
    example = Path(__file__).parent.parent / "config.example.toml"
    config = load_config(example)
    assert config.email.to == ["data-ops@example.com"]
    assert config.run.rate_limit == 1000
