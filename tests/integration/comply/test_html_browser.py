"""The HTML report in a real headless Chromium: loads offline, draws, drills down."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult

Cli = Callable[..., CliResult]
CHROMIUM = "/usr/bin/chromium"

# Flags for this machine: no sandbox as root, no GPU, and nothing that
# phones home (the network is closed and refused connections slow start-up).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def html_report(project: Path, cli: Cli, tmp_path: Path) -> Path:
    assert cli("inventory", "--format", "json", cwd=project).code == 0
    page = tmp_path / "report.html"
    result = cli("report", "--format", "html", "--output", str(page), cwd=project)
    assert result.code in (0, 1), result.err
    return page


@pytest.fixture
def sp800_53_report(html_report: Path, project: Path, cli: Cli, tmp_path: Path) -> Path:
    page = tmp_path / "sp800-53.html"
    argv = ["--framework", "sp800-53r5", "--format", "html", "--output", str(page)]
    result = cli("report", *argv, cwd=project)
    assert result.code in (0, 1), result.err
    return page


@pytest.mark.slow
def test_report_page_renders_and_drills_down(
    html_report: Path, sp800_53_report: Path, tmp_path: Path
) -> None:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (scripts/bootstrap --dev)")
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(html_report.as_uri())
        page.wait_for_selector("body[data-ready=true]")

        # The key elements: a chart row per function, a cell per subcategory.
        assert page.locator("#coverage-chart .function-bar").count() == 6
        assert page.locator("#heatmap .cell").count() == 106
        assert page.locator("#controls tbody tr").count() >= 6
        assert page.locator(".cell[data-status=automated-pass]").count() >= 1

        # Drill down from ID.AM-01 to its control and evidence.
        page.click(".cell[data-id='ID.AM-01']")
        panel = page.locator("#drilldown")
        assert panel.locator("h3").inner_text() == "ID.AM-01"
        assert panel.locator("[data-control=inventory-recorded]").count() == 1
        assert "inventory-snapshot" in panel.locator(".evidence").inner_text()

        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)

        # The largest report: SP 800-53, one cell per control.
        page.goto(sp800_53_report.as_uri())
        page.wait_for_selector("body[data-ready=true]")
        assert page.locator("#coverage-chart .function-bar").count() == 20
        assert page.locator("#heatmap .cell").count() == 1012
        page.click(".cell[data-id='CM-8']")
        assert "maps from ID.AM-01" in page.locator("#drilldown").inner_text()
        browser.close()

    assert errors == []
    # Self-contained: the page fetched nothing but itself.
    assert requests == [html_report.as_uri(), sp800_53_report.as_uri()]
    assert (tmp_path / "report.png").stat().st_size > 10_000
