""""Start here" in a real headless browser at phone size (Debian chromium via Playwright)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.report import FleetInfo, write_reports
from auditor.testing.synthetic import synthetic_history, synthetic_result
from tests.test_browser_report import ARGS, AS_OF, CHROMIUM, Page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed"),
]

sync_api = pytest.importorskip("playwright.sync_api")

#: An iPhone 12-14 screen in CSS pixels.
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phone")
    # UUID ids, company-like names, and a notice (companies not read) above the summary.
    result = synthetic_result(400, as_of=AS_OF, seed=11, realistic=True)
    write_reports(
        result,
        out,
        history=synthetic_history(result),
        fleet=FleetInfo(companies_audited=400, collection_errors=2),
    )
    return out / "report.html"


class PhonePage(Page):
    def __init__(self, browser: object, path: Path) -> None:
        self.context = browser.new_context(viewport=PHONE)  # type: ignore[attr-defined]
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        self.page.goto(path.as_uri())
        self.page.wait_for_load_state("load")


def test_first_action_is_on_the_first_phone_screen(browser: object, report: Path) -> None:
    p = PhonePage(browser, report)
    try:
        first = p.page.locator("#start-here li.action").first
        assert first.is_visible()
        top = p.page.evaluate(
            "document.querySelector('#start-here li.action').getBoundingClientRect().top"
        )
        height = p.page.evaluate("innerHeight")
        assert height == PHONE["height"]
        assert 0 < top < height, f"the first action starts at {top}px on an {height}px screen"
        # It is the top-ranked action, and Start here is right after the summary.
        assert first.get_attribute("data-rank") == "1"
        order = p.page.evaluate(
            "[...document.querySelectorAll('main > section, main > .grid')]"
            ".map(s => s.id || s.getAttribute('aria-labelledby') || s.className)"
        )
        assert order.index("start-here") == order.index("changes-h") + 1
        assert p.errors == []
    finally:
        p.close()
