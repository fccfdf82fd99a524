"""report.html in a real headless browser (Debian chromium driven by Playwright)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from auditor.report import FleetInfo, write_reports
from auditor.report._synthetic import synthetic_history, synthetic_result, tiny_result

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--headless",
]
AS_OF = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed"),
]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    hostile = tmp_path_factory.mktemp("hostile")
    write_reports(tiny_result(as_of=AS_OF), hostile, display_tz="Europe/Paris")
    fleet = tmp_path_factory.mktemp("fleet")
    result = synthetic_result(400, as_of=AS_OF, seed=11)
    write_reports(
        result,
        fleet,
        history=synthetic_history(result),
        fleet=FleetInfo(companies_audited=400),
    )
    return {"hostile": hostile / "report.html", "fleet": fleet / "report.html"}


class Page:
    """A page plus everything it said: console errors, page errors, dialogs, requests."""

    def __init__(self, browser: object, path: Path, *, js: bool = True) -> None:
        self.context = browser.new_context(java_script_enabled=js)  # type: ignore[attr-defined]
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri())
        self.page.wait_for_load_state("load")

    def _dialog(self, dialog: object) -> None:
        self.dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.dismiss()  # type: ignore[attr-defined]

    def visible_rows(self) -> int:
        return int(self.page.locator("#findings tbody tr:not([hidden])").count())

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def fleet_page(browser: object, reports: dict[str, Path]) -> Iterator[Page]:
    p = Page(browser, reports["fleet"])
    yield p
    p.close()


def test_hostile_names_trigger_no_dialog_and_no_errors(
    browser: object, reports: dict[str, Path]
) -> None:
    p = Page(browser, reports["hostile"])
    try:
        p.page.wait_for_timeout(300)  # give any injected handler a chance to fire
        assert p.dialogs == []
        assert p.errors == []
        names = p.page.locator("#findings td.company .name").all_inner_texts()
        assert "<script>alert(1)</script>" in names
        assert '"><img src=x onerror=alert(1)>' in names
        assert p.page.locator("img").count() == 0
        assert p.page.evaluate("document.documentElement.classList.contains('js')")
    finally:
        p.close()


def test_no_console_errors_and_no_network(fleet_page: Page) -> None:
    assert fleet_page.errors == []
    assert all(url.startswith("file://") for url in fleet_page.requests)
    rows = fleet_page.visible_rows()
    assert rows > 300
    assert fleet_page.page.locator("#f-count").inner_text() == f"{rows} of {rows} shown"


def test_filters_change_the_visible_rows(fleet_page: Page) -> None:
    page = fleet_page.page
    total = fleet_page.visible_rows()
    errors = page.locator('#findings tbody tr[data-severity="error"]').count()
    assert 0 < errors < total
    page.select_option("#f-severity", "error")
    assert fleet_page.visible_rows() == errors
    xero_errors = page.locator(
        '#findings tbody tr[data-severity="error"][data-platform="Xero"]'
    ).count()
    page.select_option("#f-platform", "Xero")
    assert fleet_page.visible_rows() == xero_errors
    page.click("#f-reset")
    expect(page.locator("#findings tbody tr[hidden]")).to_have_count(0)
    assert fleet_page.visible_rows() == total
    page.select_option("#f-state", "new")
    new = page.locator('#findings tbody tr[data-state="new"]').count()
    assert fleet_page.visible_rows() == new
    page.select_option("#f-state", "")
    page.select_option("#f-rule", "cross-type-skew")
    assert (
        fleet_page.visible_rows()
        == page.locator('#findings tbody tr[data-rule="cross-type-skew"]').count()
    )
    page.select_option("#f-rule", "")


def test_text_search(fleet_page: Page) -> None:
    page = fleet_page.page
    first = page.locator("#findings tbody tr").first.locator("td.company .id").inner_text()
    ids = page.locator("#findings tbody td.company .id").all_inner_texts()
    page.fill("#f-q", first.upper())  # case-insensitive
    expect(page.locator("#findings tbody tr:not([hidden])")).to_have_count(ids.count(first))
    visible = page.locator("#findings tbody tr:not([hidden]) td.company .id").all_inner_texts()
    assert set(visible) == {first}
    page.fill("#f-q", "no company is called this")
    expect(page.locator("#findings tbody tr:not([hidden])")).to_have_count(0)
    expect(page.locator("#f-none")).to_be_visible()


def _ages(page: object) -> list[float]:
    values = page.eval_on_selector_all(  # type: ignore[attr-defined]
        "#findings tbody tr", "rows => rows.map(r => r.cells[8].getAttribute('data-sort'))"
    )
    return [float(v) for v in values if v]


def test_sorting_by_age_both_ways(fleet_page: Page) -> None:
    page = fleet_page.page
    header = page.locator("#findings thead th:has(.th-label:text-is('Age'))")
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    ages = _ages(page)
    assert ages == sorted(ages)
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    ages = _ages(page)
    assert ages == sorted(ages, reverse=True)
    platform = page.locator("#findings thead th:has(.th-label:text-is('Platform'))")
    platform.click()
    platforms = page.eval_on_selector_all(
        "#findings tbody tr", "rows => rows.map(r => r.cells[3].textContent.trim())"
    )
    assert platforms == sorted(platforms, key=str.lower)


def test_readable_without_javascript(browser: object, reports: dict[str, Path]) -> None:
    p = Page(browser, reports["fleet"], js=False)
    try:
        assert p.visible_rows() > 300
        assert not p.page.locator("#filters").is_visible()
        assert p.page.locator("#trend-h").is_visible()
        assert p.page.locator("svg .b-error").count() > 0
    finally:
        p.close()


def test_rule_links_scroll_to_the_appendix(fleet_page: Page) -> None:
    page = fleet_page.page
    page.locator(".totals a.rule-link", has_text="stale").first.click()
    assert page.evaluate("location.hash") == "#rule-stale"
    assert page.locator("#rule-stale").is_visible()
