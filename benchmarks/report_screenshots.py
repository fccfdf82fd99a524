"""Screenshots of a report in headless Chromium, desktop (1440 px) and phone (390 px), with the
page's measured width: what ``docs/report.png`` and ``docs/report-phone.png`` are made with.

    auditor demo --companies 500 --nights 7 --as-of 2026-11-23T02:00:00Z --out /tmp/demo
    python benchmarks/report_screenshots.py /tmp/demo/report.html --out docs

Prints the report's size, and per viewport ``scrollWidth`` (no sideways scroll when it is at
most the viewport's width) and where the findings start (px from the top).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--headless",
]
#: name: (width, height, device scale). The phone shot is one tall screen: summary, trends and
#: the first findings cards.
VIEWPORTS = {"report.png": (1440, 1100, 1.0), "report-phone.png": (390, 1800, 2.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--full-page", action="store_true", help="the whole page, not one screen")
    args = parser.parse_args()
    print(f"report.html: {args.report.stat().st_size:,} bytes")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for name, (width, height, scale) in VIEWPORTS.items():
            context = browser.new_context(
                viewport={"width": width, "height": height}, device_scale_factor=scale
            )
            page = context.new_page()
            page.goto(args.report.resolve().as_uri())
            page.wait_for_load_state("load")
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            findings_top = page.evaluate(
                "Math.round(document.getElementById('findings-h').getBoundingClientRect().top)"
            )
            shot = args.out / name
            page.screenshot(path=str(shot), full_page=args.full_page)
            print(
                f"{width:>5} px: scrollWidth {scroll_width} px, findings at {findings_top:,} px"
                f" -> {shot}"
            )
            context.close()
        browser.close()


if __name__ == "__main__":
    main()
