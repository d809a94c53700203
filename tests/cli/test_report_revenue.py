"""`clickstats report` says the conversions and revenue the dashboard shows: per variant in the
currency of most purchases, per currency (and variant), the queries by revenue and those whose
clicks converted nothing, and the experiment's revenue metrics in their currency with the cap
and CUPED in use (the traffic of tests/reports/test_overview_conversions.py)."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from clickstats.cli import main
from clickstats.experiments import default_experiments
from clickstats.store import open_store
from clickstats.tracking import ClickTrackingService
from tests.reports.test_overview_conversions import EVENTS


def line(out: str, start: str) -> list[str]:
    """The cells of the table row that starts with `start`."""
    row = next(r for r in out.splitlines() if r.startswith(f"│ {start} "))
    return [cell.strip() for cell in row.strip("│ ").split("│")]


def test_the_report_shows_conversions_and_revenue(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path}/shop.duckdb"
    store = open_store(url)
    store.open()
    try:
        store.append_sync(EVENTS)
        experiment = next(e for e in default_experiments() if e.name == "search_ranking")
        results = ClickTrackingService(store).get_experiment_results(experiment, days=7)
    finally:
        store.close()
    result = CliRunner().invoke(main, ["report", "--store", url, "--days", "7"])
    assert result.exit_code == 0, result.output
    out = result.output

    assert "(revenue in EUR, the currency of most purchases)" in out
    # Six searches, three converted; 65 EUR of purchases attributed to them.
    conversions = [r for r in out.splitlines() if r.startswith("│ total ")][1]
    assert [c.strip() for c in conversions.strip("│ ").split("│")] == [
        "total", "6", "3", "50.0%", "65.00 EUR", "10.83 EUR",
    ]  # fmt: skip
    # Per currency: every purchase of the period (87 EUR, of which 65 EUR of its searches),
    # never EUR and JPY together; the add to cart without a currency has no amount.
    assert line(out, "EUR") == [
        "EUR", "4", "0", "4", "5", "87.00 EUR", "21.75 EUR", "3 of 4", "65.00 EUR", "10.83 EUR",
    ]  # fmt: skip
    assert line(out, "  search_v1")[5:] == ["47.00 EUR", "23.50 EUR", "2 of 2", "40.00 EUR", "13.33 EUR"]  # fmt: skip
    assert line(out, "JPY")[5:] == ["3,000.00 JPY", "3,000.00 JPY", "1 of 1", "3,000.00 JPY", "500.00 JPY"]  # fmt: skip
    assert line(out, "no currency") == ["no currency", "1", "1", "0", "0", *["-"] * 2, "1 of 1", "-", "-"]  # fmt: skip
    # The queries that earn, and those whose clicks converted nothing.
    assert "Top queries by revenue (EUR), last 7 days" in out
    assert line(out, "shoes")[:5] == ["shoes", "4", "50.0%", "40.00 EUR", "10.00 EUR"]
    assert line(out, "boots")[:5] == ["boots", "1", "100.0%", "25.00 EUR", "25.00 EUR"]
    unconverted = out[out.index("Clicked, not converted") :]
    assert line(unconverted, "shoes") == ["shoes", "6", "3", "2", "50.0%"]
    assert line(unconverted, "hats") == ["hats", "1", "1", "0", "0.0%"]

    # The experiment: its revenue metrics as amounts, with the cap and CUPED it used.
    assert results.currency == "EUR"
    v2 = next(v for v in results.variants if v.name == "search_v2")
    estimate = v2.metrics["revenue_per_user"].estimate
    assert estimate is not None
    row = next(r for r in out.splitlines() if r.startswith("│ revenue per user "))
    assert f"{estimate:,.2f} EUR" in row
    assert "Amounts (revenue per search, revenue per user, average order value) in EUR" in out
    cap = results.adjustments["revenue_per_user"].cap
    assert cap is not None and f"revenue per user at {cap.label}" in out
    assert not re.search(r"\d\.\d{3} EUR", out)  # no amount with a third decimal
