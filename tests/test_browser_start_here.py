""""Start here" in a real headless browser at phone size (Debian chromium via Playwright)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.report import FleetInfo, build_digest, write_reports
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


#: A narrow mail client's reading pane (and Gmail's web view at its narrowest).
MAIL = {"width": 600, "height": 900}
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def test_the_digest_reads_at_600px_with_start_here_first(
    browser: object, tmp_path: Path
) -> None:
    result = synthetic_result(400, as_of=AS_OF, seed=11, realistic=True)
    msg = build_digest(result, fleet=FleetInfo(companies_audited=400, collection_errors=2))
    body = msg.get_body(("html",))
    assert body is not None
    page_file = tmp_path / "digest.html"
    page_file.write_text(str(body.get_content()), encoding="utf-8")
    context = browser.new_context(viewport=MAIL)  # type: ignore[attr-defined]
    page = context.new_page()
    try:
        page.goto(page_file.as_uri())
        page.wait_for_load_state("load")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= MAIL["width"], f"the digest is {width}px wide"
        top = page.evaluate(
            "document.querySelector('#start-here tr').getBoundingClientRect().top"
        )
        assert 0 < top < MAIL["height"], f"Start here's first action starts at {top}px"
        shown = page.evaluate("document.body.innerText")
        assert "Start here" in shown
        # Short ids only (the full one is in a title attribute and the CSVs): no 4-line UUID.
        assert re.search(UUID, shown) is None
        assert re.search(UUID, page.content()) is not None  # ... they are there, not shown
    finally:
        context.close()
