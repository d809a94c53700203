"""The dashboard with keys on, in real headless Chromium: it asks for a read key on the page,
keeps it for the tab, shows the figures with it, and runs under its strict CSP."""

from __future__ import annotations

import httpx
from playwright.sync_api import Response

from clickstats.api.headers import CONTENT_SECURITY_POLICY
from tests.browser.conftest import Tab
from tests.browser.origins import Keyed

#: Every CSP violation of the page (Playwright's init scripts are not subject to the policy).
RECORD_VIOLATIONS = """(() => {
  window.violations = [];
  document.addEventListener("securitypolicyviolation", (e) => {
    window.violations.push(e.violatedDirective + " " + e.blockedURI);
  });
  window.prompt = () => { window.violations.push("window.prompt"); return null; };
})();"""
KEY_STORE = "clickstats:key"


def fill(keyed: Keyed) -> None:
    """Three searches by two users, one clicked, sent with the ingest key as a back end would."""
    events = [
        {"type": "impression", "user_id": user, "search_id": search, "query": query,
         "variant": "search_v1", "results_count": 2, "response_time_ms": 30.0,
         "results": ["sku-1", "sku-2"]}
        for user, search, query in [("u1", "s1", "shoes"), ("u1", "s2", "socks"), ("u2", "s3", "hats")]
    ]  # fmt: skip
    events.append(
        {"type": "click", "user_id": "u1", "search_id": "s1", "product_id": "sku-2", "rank": 2,
         "search_query": "shoes", "variant": "search_v1"}
    )  # fmt: skip
    r = httpx.post(
        f"{keyed.server.url}/analytics/events",
        json={"events": events},
        headers={"X-Clickstats-Key": keyed.keys.ingest},
        timeout=10,
    )
    assert r.status_code == 200 and r.json()["accepted"] == 4, r.text


def assert_strict_headers(response: Response | httpx.Response) -> None:
    headers = response.headers
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


def other_errors(tab: Tab) -> list[str]:
    """Console errors but Chromium's line for each 401/403 answer (what the test asks for)."""
    return [e for e in tab.errors if "the server responded with a status of 40" not in e]


def violations(tab: Tab) -> list[str]:
    found: list[str] = tab.page.evaluate("window.violations")
    return found


def submit_key(tab: Tab, key: str) -> None:
    page = tab.page
    page.fill("#api-key", key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("body:not([data-state='loading'])", state="attached")


def test_the_dashboard_asks_for_a_read_key_once_and_shows_the_figures_with_it(
    tab: Tab, keyed: Keyed
) -> None:
    page, server = tab.page, keyed.server
    fill(keyed)
    page.add_init_script(RECORD_VIOLATIONS)
    answers: list[tuple[int, str]] = []
    page.on(
        "response",
        lambda r: answers.append((r.status, r.url)) if "/analytics/" in r.url else None,
    )

    # No key yet: the data requests answer 401 and the page asks for a key, on the page.
    shell = page.goto(f"{server.url}/?days=7")
    assert shell is not None and shell.status == 200
    assert_strict_headers(shell)
    page.wait_for_selector("body[data-state='key']", state="attached")
    assert page.is_visible("#key-form") and page.is_hidden("#view")
    assert page.is_hidden("#forget-key")
    assert "can only be read with a key" in (page.text_content("#key-why") or "")
    assert {status for status, _ in answers} == {401}

    # An ingest key may send events, not read them: 403, said plainly, and asked again.
    submit_key(tab, keyed.keys.ingest)
    assert page.evaluate("document.body.dataset.state") == "key"
    why = page.text_content("#key-why") or ""
    assert "needs a read or admin key" in why and "an ingest key" in why, why

    # A read key: the figures, and the key kept for this tab.
    answers.clear()
    submit_key(tab, keyed.keys.read)
    assert page.evaluate("document.body.dataset.state") == "ready", page.text_content("#status")
    assert page.text_content('[data-kpi="searches"]') == "3"
    assert page.text_content('[data-kpi="users"]') == "2"
    assert page.text_content('[data-kpi="search_ctr"]') == "33.3%"
    drawn = page.evaluate(
        "Array.from(document.querySelectorAll('#view canvas')).map((c) => Boolean(Chart.getChart(c)))"
    )
    assert drawn and all(drawn)  # Chart.js draws under script-src/style-src 'self'
    assert page.is_hidden("#key-form") and page.is_visible("#forget-key")
    assert page.evaluate(f"sessionStorage.getItem('{KEY_STORE}')") == keyed.keys.read
    assert answers and {status for status, _ in answers} == {200}
    assert violations(tab) == []

    # Another page of the dashboard in this tab: no question, the same key.
    answers.clear()
    page.click("nav [data-page='queries']")
    page.wait_for_url("**/dashboard/queries*")
    page.wait_for_selector("body[data-state='ready']", state="attached")
    assert page.is_hidden("#key-form")
    assert answers and {status for status, _ in answers} == {200}
    assert page.text_content("#top-queries tbody tr td") in {"shoes", "socks", "hats"}
    assert violations(tab) == []

    # Forget key: gone from the tab, and the page asks again.
    page.click("#forget-key")
    page.wait_for_selector("body[data-state='key']", state="attached")
    assert page.evaluate(f"sessionStorage.getItem('{KEY_STORE}')") is None
    assert page.is_visible("#key-form") and page.is_hidden("#forget-key")

    assert violations(tab) == []  # window.prompt never used, nothing blocked by the CSP
    assert not [e for e in tab.errors if "Content Security Policy" in e]
    assert other_errors(tab) == []


def test_a_revoked_or_mistyped_key_is_forgotten_and_asked_for_again(tab: Tab, keyed: Keyed) -> None:
    page, server = tab.page, keyed.server
    page.add_init_script(f"sessionStorage.setItem('{KEY_STORE}', 'cs_read_{'0' * 32}')")
    page.goto(f"{server.url}/dashboard/queries")
    page.wait_for_selector("body[data-state='key']", state="attached")
    assert "The key was not accepted" in (page.text_content("#key-why") or "")
    assert "unknown API key" in (page.text_content("#key-why") or "")
    assert page.evaluate(f"sessionStorage.getItem('{KEY_STORE}')") is None
    assert other_errors(tab) == []


def test_every_page_and_file_of_the_dashboard_and_demo_carries_the_security_headers(
    keyed: Keyed,
) -> None:
    server = keyed.server.url
    pages = ["/", "/dashboard/queries", "/dashboard/users/u1", "/demo"]
    assets = ["/dashboard/assets/dashboard.js", "/dashboard/assets/chart.umd.min.js",
              "/dashboard/assets/dashboard.css", "/demo/demo.js", "/demo/demo.css"]  # fmt: skip
    for path in pages + assets:
        r = httpx.get(server + path, timeout=10)
        assert r.status_code == 200, path  # open with keys on
        assert_strict_headers(r)
    # Every other answer is at least not sniffed; /docs keeps FastAPI's inline script.
    for path in ["/health", "/analytics/tracker.js", "/analytics/ctr", "/docs"]:
        r = httpx.get(server + path, timeout=10)
        assert r.headers["x-content-type-options"] == "nosniff", path
    assert "content-security-policy" not in httpx.get(server + "/docs", timeout=10).headers
