"""The dashboard in real headless Chromium, against `clickstats serve` on simulated traffic."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import duckdb
import httpx
import pytest
from playwright.sync_api import Browser, Route

from clickstats.experiments import Experiment, ExperimentManager
from clickstats.search import default_catalog, default_engine
from clickstats.simulate import InProcess, simulate
from clickstats.store import open_store
from tests.browser.conftest import ARTIFACTS, Tab
from tests.conftest import LiveServer

DAYS = 30  # the simulated traffic is spread over this many days
DUEL = {"name": "duel", "type": "interleaving", "variants": {"search_v1": 1, "search_v2": 1}}
#: Same variants as search_ranking, configured 9:1 while the traffic is split 1:1.
SKEWED = {"name": "skewed", "variants": {"search_v1": 9, "search_v2": 1}}
OVERVIEW_CHARTS = {
    "chart-daily-searches", "chart-daily-ctr", "chart-ranks", "chart-latency",
    "chart-daily-conversion", "chart-revenue",
}  # fmt: skip
#: Per canvas of the page: is it a chart, how many non-zero values it has, how many pixels it inked.
CHARTS = """() => Array.from(document.querySelectorAll("#view canvas")).map((canvas) => {
  const chart = Chart.getChart(canvas);
  const values = chart ? chart.data.datasets.flatMap((d) => d.data.flat()) : [];
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) inked++;
  return {id: canvas.id, chart: Boolean(chart), inked,
          values: values.filter((v) => typeof v === "number" && v !== 0).length};
})"""


@dataclass(frozen=True)
class Filled:
    server: LiveServer
    busiest_user: str


def fill(store_path: Path, experiments: Path) -> str:
    """An A/B test and an interleaving experiment's worth of simulated traffic; the id of the
    user with the most A/B searches."""
    store = open_store(f"duckdb://{store_path}")
    store.open()
    try:
        manager = ExperimentManager(experiments)  # search_ranking, the default A/B test
        backend = InProcess(store, manager, default_engine())
        # Users alike (the simulator's population before issue 14): at 300 users, users who
        # differ as real ones do leave search_v2's better search CTR within the noise, and the
        # page is to show a verdict.
        simulate(
            backend, default_catalog(), users=300, searches=2500, days=DAYS, seed=1, alike=True
        )
        manager.put(Experiment.model_validate(DUEL))  # from now on every search is interleaved
        simulate(
            backend, default_catalog(), users=150, searches=1000, days=DAYS, seed=7, alike=True
        )
        manager.put(Experiment.model_validate(SKEWED))
    finally:
        store.close()
    with duckdb.connect(str(store_path), read_only=True) as db:
        row = db.execute(
            "SELECT user_id FROM impressions WHERE variant LIKE 'search_v%' "
            "GROUP BY user_id ORDER BY count(*) DESC, user_id LIMIT 1"
        ).fetchone()
    assert row is not None
    return str(row[0])


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    tmp = tmp_path_factory.mktemp("dashboard")
    store_path = tmp / "dashboard.duckdb"
    busiest = fill(store_path, tmp / "dashboard.experiments.json")  # beside the store
    server = serve_in(tmp, store_path)
    yield Filled(server, busiest)
    server.stop()


def serve_in(directory: Path, store_path: Path) -> LiveServer:
    """`clickstats serve` with `directory` as its working directory (not the repository's,
    whose data/ the server must not touch)."""
    server = LiveServer(store_path)
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        server.start()
    finally:
        os.chdir(cwd)
    return server


@pytest.fixture
def alone(tmp_path: Path) -> Iterator[LiveServer]:
    """A server on an empty store, with experiments of its own."""
    server = serve_in(tmp_path, tmp_path / "alone.duckdb")
    yield server
    server.stop()


def offline(tab: Tab, server: LiveServer) -> list[str]:
    """Refuse every request to another host, as without internet; the list of those tried."""
    outside: list[str] = []

    def only_the_server(route: Route) -> None:
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    tab.page.route("**/*", only_the_server)
    return outside


def open_page(tab: Tab, server: LiveServer, path: str) -> list[str]:
    outside = offline(tab, server)
    tab.page.goto(server.url + path)
    wait_ready(tab)
    return outside


def wait_ready(tab: Tab) -> None:
    # A selector, not wait_for_function: the page's CSP (no 'unsafe-eval') refuses the eval
    # that wait_for_function runs in the page.
    tab.page.wait_for_selector("body:not([data-state='loading'])", state="attached")
    state = tab.page.evaluate("document.body.dataset.state")
    assert state == "ready", tab.page.text_content("#status")


def assert_charts_drawn(tab: Tab, expected: set[str]) -> None:
    charts = tab.page.evaluate(CHARTS)
    assert {c["id"] for c in charts} == expected
    for c in charts:
        assert c["chart"] and c["values"] > 0, c  # a chart, with data
        assert c["inked"] > 2000, c  # and drawn on the canvas


def screenshot(tab: Tab, page: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    tab.page.screenshot(path=str(ARTIFACTS / f"dashboard-{page}.png"), full_page=True)


def get(server: LiveServer, path: str, **params: Any) -> Any:
    response = httpx.get(server.url + path, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def kpi(tab: Tab, name: str) -> str:
    return tab.page.text_content(f'[data-kpi="{name}"]') or ""


#: The experiment page's prose: the verdict, how sure, each health check, each note.
PROSE = "#verdict, #certainty, #health li, #experiment-body p, #ab-variants td.reason"


def assert_full_sentences(tab: Tab) -> list[str]:
    """Every sentence of the experiment page ends as a sentence: no dangling colon, no
    placeholder for a missing number, no "1 users"; the texts."""
    texts = [t.strip() for t in tab.page.locator(PROSE).all_text_contents() if t.strip()]
    assert texts
    for text in texts:
        assert text[-1] in ".)", text
        assert not re.search(r":\s*[.)]?$", text), text
        assert not re.search(r"(threshold|yet|data)\s*[-\u2013]", text), text
        assert not re.search(r"(?<![\d,.])1 (users|searches|clicks|variants)\b", text), text
        # What JavaScript prints for a missing value ("the metric is undefined" is prose).
        assert not re.search(r"(?<!is )\bundefined\b|\bnull\b|\bNaN\b", text), text
    return texts


def test_overview_draws_every_chart_and_the_period_and_variant_change_the_numbers(
    tab: Tab, filled: Filled
) -> None:
    server, page = filled.server, tab.page
    outside = open_page(tab, server, "/?days=7")
    tz = page.evaluate("dashboard.timeZone")
    week = get(server, "/analytics/overview", days=7, tz=tz)
    assert kpi(tab, "searches") == f"{week['totals']['searches']:,}"
    assert kpi(tab, "search_ctr") == f"{100 * week['totals']['search_ctr']:.1f}%"
    # The simulator's users buy (in EUR): conversions and revenue are on the page too.
    assert week["currency"] == "EUR" and week["totals"]["converted_searches"] > 0
    assert kpi(tab, "conversion_rate") == f"{100 * week['totals']['conversion_rate']:.1f}%"
    assert kpi(tab, "revenue_per_search") == f"{week['totals']['revenue_per_search']:,.2f}\u00a0EUR"
    assert_charts_drawn(tab, OVERVIEW_CHARTS)
    assert page.is_hidden(".onboarding")
    rows = page.locator("#variants-table tbody tr td:first-child").all_text_contents()
    assert rows == sorted(week["by_variant"]) and "search_v2" in rows
    screenshot(tab, "overview")

    with page.expect_request("**/analytics/overview?*") as asked:
        page.get_by_role("button", name="90 days").click()
    wait_ready(tab)
    query = parse_qs(urlsplit(asked.value.url).query)
    assert query["days"] == ["90"] and query["tz"] == [tz]
    assert page.url.endswith("/?days=90")
    quarter = get(server, "/analytics/overview", days=90, tz=tz)
    assert quarter["totals"]["searches"] > week["totals"]["searches"]
    assert kpi(tab, "searches") == f"{quarter['totals']['searches']:,}"
    assert page.get_attribute('[data-days="90"]', "aria-pressed") == "true"

    page.select_option("#variant", "search_v2")
    wait_ready(tab)
    assert "variant=search_v2" in page.url
    only_v2 = quarter["by_variant"]["search_v2"]["searches"]
    assert kpi(tab, "searches") == f"{only_v2:,}"
    assert_charts_drawn(tab, OVERVIEW_CHARTS)
    page.go_back()  # the choices are in the URL: back is the 90 days of every variant again
    wait_ready(tab)
    assert page.url.endswith("/?days=90") and page.input_value("#variant") == ""
    assert kpi(tab, "searches") == f"{quarter['totals']['searches']:,}"
    assert tab.errors == [] and outside == []


def test_days_are_the_viewers_days(browser: Browser, filled: Filled) -> None:
    # UTC+14: for ten hours of every day, "today" there is tomorrow in UTC.
    zone = "Pacific/Kiritimati"
    context = browser.new_context(viewport={"width": 1100, "height": 800}, timezone_id=zone)
    context.set_default_timeout(10_000)
    try:
        tab = Tab(context.new_page())
        with tab.page.expect_request("**/analytics/overview?*") as asked:
            open_page(tab, filled.server, "/?days=7")
        assert parse_qs(urlsplit(asked.value.url).query)["tz"] == [zone]
        assert tab.page.text_content("#tz") == zone
        answer = get(filled.server, "/analytics/overview", days=7, tz=zone)
        labels = tab.page.evaluate(
            "Chart.getChart(document.getElementById('chart-daily-searches')).data.labels"
        )
        expected = [date.fromisoformat(d) for d in answer["daily"]["days"]]
        assert labels == [f"{d:%b} {d.day}" for d in expected] and len(labels) == 7
        assert tab.errors == []
    finally:
        context.close()


def test_queries_page_shows_the_tables_and_the_products_chart(tab: Tab, filled: Filled) -> None:
    server, page = filled.server, tab.page
    outside = open_page(tab, server, f"/dashboard/queries?days={DAYS}")
    tz = page.evaluate("dashboard.timeZone")
    answer = get(server, "/analytics/queries", days=DAYS, tz=tz, limit=20)
    first = page.locator("#top-queries tbody tr").first.locator("td").all_text_contents()
    top = answer["top_queries"][0]
    assert first[:3] == [top["query"], f"{top['searches']:,}", f"{top['users']:,}"]
    assert first[3] == f"{100 * top['search_ctr']:.1f}%"
    assert first[4] == f"{top['avg_click_position']:.2f}"
    products = page.locator("#top-products tbody tr td:first-child").all_text_contents()
    assert products == [p["product_id"] for p in answer["top_products"]]
    no_click = page.locator("#no-click-queries tbody tr td:first-child").all_text_contents()
    assert no_click == [q["query"] for q in answer["no_click_queries"]]
    # The simulated catalog finds something for every query: the table says so.
    assert answer["zero_result_queries"] == []
    assert page.text_content("#zero-result-queries tbody") == "Every query found something."
    assert_charts_drawn(tab, {"chart-products"})
    screenshot(tab, "queries")

    page.get_by_role("button", name="1 day").click()
    wait_ready(tab)
    today = get(server, "/analytics/queries", days=1, tz=tz, limit=20)
    cells = page.locator("#top-queries tbody tr").first.locator("td").all_text_contents()
    if today["top_queries"]:  # none just after midnight
        assert cells[1] == f"{today['top_queries'][0]['searches']:,}"
        assert today["top_queries"][0]["searches"] < top["searches"]
    else:
        assert cells == ["Nothing in this period."]
    assert tab.errors == [] and outside == []


def test_experiments_page_answers_which_variant_is_better_and_how_sure(
    tab: Tab, filled: Filled
) -> None:
    server, page = filled.server, tab.page
    outside = open_page(tab, server, f"/dashboard/experiments?days={DAYS}")
    results = get(server, "/experiments/search_ranking/results", days=DAYS)
    assert page.input_value("#experiment") == "search_ranking"
    # Which is better: the decision's sentence, first on the page.
    verdict = page.text_content("#verdict") or ""
    assert verdict == results["decision"]["summary"]
    assert verdict.startswith("Ship search_v2")  # the simulator's better ranker
    # How sure: the interval and the p-value of the primary metric, in words ...
    ctr = next(v for v in results["variants"] if v["name"] == "search_v2")["metrics"]["search_ctr"]
    low, high = ctr["comparison"]["relative_ci"]
    certainty = page.text_content("#certainty") or ""
    assert f"from {100 * low:+.1f}% to {100 * high:+.1f}%" in certainty, certainty
    assert "does not include 0" in certainty
    # ... and every metric's interval drawn as a bar from its lower to its upper end.
    assert_charts_drawn(tab, {"chart-intervals"})
    drawn = page.evaluate(
        "Chart.getChart(document.getElementById('chart-intervals')).data.datasets[0].data"
    )
    assert drawn[0] == pytest.approx([low, high])
    assert page.is_hidden("#srm-warning")
    assert page.locator("#health li.pass").count() == 3
    columns = page.locator("#ab-variants thead th").all_text_contents()
    assert columns == [
        "metric", "search_v1 (control)", "search_v2",
        "difference [95% CI]", "relative change [95% CI]", "p-value",
    ]  # fmt: skip
    primary = page.locator('#ab-variants tr[data-metric="search_ctr"] td').all_text_contents()
    assert primary[0] == "★ search CTR (higher is better)"  # label, then its direction
    # A difference of two rates in percentage points, a relative change in percent: one unit
    # per interval.
    a_low, a_high = ctr["comparison"]["absolute_ci"]
    pp = "\u00a0pp"  # kept on the line of its number
    assert primary[3] == (
        f"{100 * ctr['comparison']['absolute']:+.1f}{pp} "
        f"[{100 * a_low:+.1f}{pp}, {100 * a_high:+.1f}{pp}]"
    )
    assert (
        primary[4]
        == f"{100 * ctr['comparison']['relative']:+.1f}% [{100 * low:+.1f}%, {100 * high:+.1f}%]"
    )
    assert f"by {100 * ctr['comparison']['absolute']:+.1f}{pp}" in certainty
    # Every metric's definition is one hover away: its title.
    assert page.get_attribute('#ab-variants tr[data-metric="search_ctr"] td', "title") == (
        "search CTR: searches with at least one click / searches "
        "(shown as a percentage; higher is better)"
    )
    assert_full_sentences(tab)
    screenshot(tab, "experiments")
    tab.page.screenshot(path=str(ARTIFACTS / "experiments-demo.png"), full_page=True)

    page.select_option("#experiment", "duel")
    wait_ready(tab)
    duel = get(server, "/experiments/duel/interleaving", days=DAYS)
    assert page.text_content("#verdict") == duel["verdict"]
    assert duel["verdict"].startswith("Users prefer search_v2")
    assert f"{100 * duel['ci_low']:.1f}% to {100 * duel['ci_high']:.1f}%" in (
        page.text_content("#certainty") or ""
    )
    assert_charts_drawn(tab, {"chart-preference"})
    screenshot(tab, "interleaving")

    page.select_option("#experiment", "skewed")
    wait_ready(tab)
    assert page.is_visible("#srm-warning")
    assert "do not match the configured split" in (page.text_content("#srm-text") or "")
    assert (page.text_content("#verdict") or "").startswith("Do not act on these results")
    assert (page.text_content("#certainty") or "").startswith("How sure: not at all")
    screenshot(tab, "experiments-srm")
    assert tab.errors == [] and outside == []


def test_the_user_page_opens_from_the_form(tab: Tab, filled: Filled) -> None:
    server, page, user = filled.server, tab.page, filled.busiest_user
    outside = open_page(tab, server, f"/?days={DAYS}")
    page.get_by_label("User", exact=True).fill(user)
    page.get_by_role("button", name="Open").click()
    page.wait_for_url(f"**/dashboard/users/{user}?days={DAYS}")
    wait_ready(tab)
    tz = page.evaluate("dashboard.timeZone")
    figures = get(server, "/analytics/overview", days=DAYS, user_id=user, tz=tz)
    totals = figures["totals"]
    assert page.text_content("#user-name") == user
    assert kpi(tab, "searches") == f"{totals['searches']:,}"
    assert kpi(tab, "clicks") == f"{totals['clicks']:,}"
    # Two metrics, two names: the share of searches with a click, and clicks / searches.
    assert kpi(tab, "search_ctr") == f"{100 * totals['search_ctr']:.1f}%"
    assert kpi(tab, "clicks_per_search") == f"{totals['clicks'] / totals['searches']:.2f}"
    assert "%" not in kpi(tab, "clicks_per_search")
    assert "CTR" not in (page.text_content('dt[data-metric="clicks_per_search"]') or "")
    assert_charts_drawn(tab, {"chart-user-daily", "chart-user-ranks"})
    rows = page.locator("#user-variants tbody tr td:first-child").all_text_contents()
    assert rows == sorted(figures["by_variant"])
    screenshot(tab, "user")
    assert tab.errors == [] and outside == []


def test_an_empty_store_shows_how_to_send_the_first_event(tab: Tab, server: LiveServer) -> None:
    page = tab.page
    outside = open_page(tab, server, "/")
    assert page.is_visible(".onboarding") and page.is_hidden(".filled")
    snippet = page.text_content("#snippet") or ""
    assert f'<script src="{server.url}/analytics/tracker.js"></script>' in snippet
    curl = page.text_content("#curl") or ""
    assert curl.startswith("curl ") and curl.endswith(f"{server.url}/analytics/log-impression")
    screenshot(tab, "empty")

    # The line works as shown: the first search arrives, and the page shows it.
    args = shlex.split(curl)
    args[1:1] = ["--fail-with-body", "--max-time", "20"]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    page.reload()
    wait_ready(tab)
    assert page.is_hidden(".onboarding")
    assert kpi(tab, "searches") == "1"
    assert tab.errors == [] and outside == []


def test_an_experiment_with_little_data_says_what_is_missing_in_full_sentences(
    tab: Tab, alone: LiveServer
) -> None:
    """12 users and 40 searches against 3 users and 5: too early, and the page says why with
    the numbers; an experiment whose second variant has no search at all says that."""
    events: list[dict[str, Any]] = []
    for variant, searches, users in (("search_v1", 40, 12), ("search_v2", 5, 3)):
        for n in range(searches):  # a click on every other search: 50% and 40% search CTR
            sid, user = f"{variant}-{n}", f"{variant}-user-{n % users}"
            events.append({"type": "impression", "user_id": user, "search_id": sid,
                           "query": "shoes", "variant": variant, "results_count": 10})  # fmt: skip
            if n % 2:
                events.append({"type": "click", "user_id": user, "search_id": sid,
                               "product_id": "p1", "rank": 1 + n % 3, "variant": variant})  # fmt: skip
    response = httpx.post(f"{alone.url}/analytics/events", json={"events": events}, timeout=30)
    assert response.status_code == 200 and response.json()["rejected"] == 0
    new = {"name": "new_ranker", "variants": {"search_v1": 1, "search_v3": 1}}
    assert httpx.post(f"{alone.url}/experiments", json=new, timeout=10).status_code == 201

    page = tab.page
    outside = open_page(tab, alone, "/dashboard/experiments?experiment=search_ranking")
    results = get(alone, "/experiments/search_ranking/results", days=30)
    sample = results["health"]["sample"]
    assert not sample["met"]
    texts = assert_full_sentences(tab)
    verdict = page.text_content("#verdict") or ""
    assert verdict == results["decision"]["summary"]
    # What is missing, with the numbers, in the verdict and in the health check.
    for figure in ("12 users", "40 searches", "3 users", "5 searches", "30 users", "150 searches"):
        assert figure in verdict, (figure, verdict)
    health = page.locator("#health li").all_text_contents()
    assert f"Not enough data yet: {sample['reason']}." in health
    assert any(t.startswith("No implausibly large change") and "50%" in t for t in health), health
    assert page.locator("#ab-variants tbody tr").count() > 1  # users, then one row per metric
    users = page.locator("#ab-variants tbody tr:first-child td").all_text_contents()
    assert users[:3] == ["users", "12", "3"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "experiments-little-data.png"), full_page=True)

    page.select_option("#experiment", "new_ranker")
    wait_ready(tab)
    texts = assert_full_sentences(tab)
    reason = get(alone, "/experiments/new_ranker/results", days=30)["reason"]
    assert page.text_content("#verdict") == f"No verdict: {reason}."
    assert page.locator("#ab-variants").count() == 0  # no empty table: a sentence instead
    assert any(t.startswith("Nothing to compare yet: ") for t in texts), texts
    page.screenshot(path=str(ARTIFACTS / "experiments-no-data.png"), full_page=True)
    assert tab.errors == [] and outside == []
