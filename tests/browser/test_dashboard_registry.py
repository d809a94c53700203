"""A metric added to the registry reaches the dashboard without another edit: in real headless
Chromium, the overview shows it as a card and a column of the per-variant table, and the
queries page as a column of the top queries (docs/ARCHITECTURE.md, "Add a metric").

`clickstats serve` runs in a subprocess, out of a monkeypatch's reach: here the server is the
test process's own app, run by uvicorn in a thread, so that it reads the patched registry."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.sync_api import Route

from clickstats import metrics
from clickstats.app import create_app
from clickstats.settings import Settings
from tests.browser.conftest import ARTIFACTS, Tab, visitor_agent
from tests.conftest import free_port
from tests.test_metric_registry import EXPECTED, RATE, TOP3, TOTAL, percent, seed


def hover() -> str:
    """How dashboard.js words the metric's definition on hover: the registry's definition
    (which reads the patched COLUMNS, so only under the patch), then how the value reads."""
    return f"{RATE.definition} (shown as a percentage; higher is better)"


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app on the patched registry, served by uvicorn in a thread, with the traffic of
    tests/test_metric_registry.py (one query, two variants, all within the last day)."""
    monkeypatch.setitem(metrics.COLUMNS, TOP3.name, TOP3)
    monkeypatch.setitem(metrics.METRICS, RATE.name, RATE)
    app = create_app(Settings(store=f"duckdb://{tmp_path / 'x.duckdb'}", max_event_age_days=0))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the server did not answer /health within 30 s")
            time.sleep(0.05)
        # A browser's User-Agent: httpx's own is a bot's, whose events the server drops.
        headers = {"User-Agent": visitor_agent("120.0.0.0")}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            seed(client)  # type: ignore[arg-type]  # the TestClient's post, as httpx's
            totals = client.get("/analytics/overview").json()["totals"]
        assert totals["searches"] == 9
        assert totals[RATE.name] == pytest.approx(TOTAL)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive()


def offline(tab: Tab, base: str) -> list[str]:
    """Refuse every request to another host, as without internet; the list of those tried."""
    outside: list[str] = []

    def only_the_server(route: Route) -> None:
        if route.request.url.startswith(base + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    tab.page.route("**/*", only_the_server)
    return outside


def open_page(tab: Tab, address: str) -> None:
    tab.page.goto(address)
    # A selector, not wait_for_function: the page's CSP refuses wait_for_function's eval.
    tab.page.wait_for_selector("body:not([data-state='loading'])", state="attached")
    state = tab.page.evaluate("document.body.dataset.state")
    assert state == "ready", tab.page.text_content("#status")


#: Whether the element is what the page shows at its centre (not covered by another element).
ON_TOP = """(el) => {
  const box = el.getBoundingClientRect();
  const top = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
  return top !== null && el.contains(top);
}"""


def seen(tab: Tab, selector: str) -> bool:
    """The element is on screen and on top; and a table, inside its card."""
    element = tab.page.locator(selector)
    element.scroll_into_view_if_needed()
    on_top = element.evaluate(ON_TOP)
    table = element.evaluate(
        "(el) => { const t = el.closest('table'); if (!t) return true;"
        " const c = t.closest('.card, .scroll');"
        " return t.getBoundingClientRect().right <= c.getBoundingClientRect().right + 0.5; }"
    )
    return bool(on_top and table)


def column(tab: Tab, table: str, name: str) -> dict[str, str]:
    """The cells of a table's column for the metric `name`, by the row's first cell; asserts
    the header's label and hover definition."""
    page = tab.page
    headers = page.locator(f"#{table} thead th")
    names = [headers.nth(i).get_attribute("data-metric") for i in range(headers.count())]
    assert names.count(name) == 1, names
    index = names.index(name)
    assert names[-1] == name  # after the columns the page declares
    th = headers.nth(index)
    assert th.text_content() == RATE.label
    assert th.get_attribute("title") == hover()
    rows = page.locator(f"#{table} tbody tr")
    cells: dict[str, str] = {}
    for i in range(rows.count()):
        tds = rows.nth(i).locator("td, th")
        assert tds.count() == len(names)  # every row has the added cell
        cells[tds.nth(0).text_content() or ""] = tds.nth(index).text_content() or ""
    return cells


def test_a_metric_added_to_the_registry_is_on_the_dashboard(url: str, tab: Tab) -> None:
    assert RATE.definition == (
        "top-3 first click rate: searches whose first click is in the top 3 / searches"
    )
    outside = offline(tab, url)
    page = tab.page

    # The overview: a card, after the declared ones, with the page's percentage.
    open_page(tab, url + "/")
    card = page.locator(f'.kpis div:has(dd[data-kpi="{RATE.name}"])')
    assert card.count() == 1
    assert page.locator(".kpis dd").last.get_attribute("data-kpi") == RATE.name
    dt = card.locator("dt")
    assert dt.text_content() == "Top-3 first click rate"
    assert dt.get_attribute("title") == hover()
    assert dt.get_attribute("data-metric") == RATE.name
    assert card.locator("dd").text_content() == percent(TOTAL) == "55.6%"
    assert card.is_visible() and seen(tab, f'[data-kpi="{RATE.name}"]')
    # The card is laid out like the others: same height as its neighbour, on the page.
    boxes = [page.locator(".kpis > div").nth(i).bounding_box() for i in range(2)]
    mine = card.bounding_box()
    assert mine is not None and all(boxes)
    assert abs(mine["height"] - boxes[0]["height"]) < 2  # type: ignore[index]

    # The per-variant table: a column with each variant's value.
    assert column(tab, "variants-table", RATE.name) == {
        variant: percent(value) for variant, value in EXPECTED.items()
    }
    assert percent(EXPECTED["search_v1"]) == "50.0%"
    assert percent(EXPECTED["search_v2"]) == "60.0%"
    assert seen(tab, f'#variants-table th[data-metric="{RATE.name}"]')
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-added-metric.png"), full_page=True)

    # The queries page: a column of the top queries.
    open_page(tab, url + "/dashboard/queries")
    assert column(tab, "top-queries", RATE.name) == {"shoes": percent(TOTAL)}
    page.screenshot(path=str(ARTIFACTS / "dashboard-added-metric-queries.png"), full_page=True)

    assert tab.errors == [] and outside == []


def test_the_added_column_of_the_top_queries_is_readable(url: str, tab: Tab) -> None:
    open_page(tab, url + "/dashboard/queries")
    column(tab, "top-queries", RATE.name)
    headers = tab.page.locator("#top-queries thead th")
    added = [h.get_attribute("data-metric") for h in headers.all()][6:]
    problems = []
    if added != [RATE.name]:  # only the metric added to the registry
        problems.append(f"columns added: {added}")
    if not seen(tab, f'#top-queries th[data-metric="{RATE.name}"]'):
        problems.append("the added column is outside its card, covered")
    assert problems == []
