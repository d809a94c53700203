"""The report, export and import commands as a user runs them (click's runner, real stores)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from clickstats import metrics
from clickstats.cli import main
from clickstats.events import utcnow
from clickstats.store import open_store
from clickstats.store.base import Filters


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"duckdb:///{tmp_path_factory.mktemp('cli')}/sim.duckdb"
    result = CliRunner().invoke(
        # no pre-period: the store then holds the 5 days the report's 7 count
        main,
        [
            "simulate",
            "--users",
            "80",
            "--searches",
            "800",
            "--store",
            url,
            "--days",
            "5",
            "--pre-days",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    return url


def run(*args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_report_prints_the_overview_and_the_verdict(simulated: str) -> None:
    out = run("report", "--days", "7", env={"CLICKSTATS_STORE": simulated})
    assert "search_v1" in out and "search_v2" in out and "total" in out
    assert "search CTR" in out and "p95 latency" in out
    assert "Experiment search_ranking" in out
    assert "Verdict:" in out
    store = open_store(simulated)  # the table's total is the store's (5 days of searches)
    store.open()
    try:
        month = Filters(since=utcnow() - timedelta(days=30))
        searches = store.counts(month)[()].impressions
    finally:
        store.close()
    assert f"{searches:,}" in out


def test_report_on_an_empty_store_says_how_to_start(tmp_path: Path) -> None:
    out = run("report", "--store", f"duckdb:///{tmp_path}/empty.duckdb")
    assert "holds no events yet" in out
    assert "/analytics/log-impression" in out and "clickstats simulate" in out


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_export_then_import_by_the_command_line(simulated: str, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"events.{fmt}"
    out = run("export", "--store", simulated, "--output", str(path))
    assert f"to {path} ({fmt})" in out
    target = f"duckdb:///{tmp_path}/copy.duckdb"
    first = run("import", str(path), "--store", target)
    again = run("import", str(path), "--store", target)
    exported = int(out.split()[1].replace(",", ""))
    assert f"{exported:,} imported, 0 already present, 0 rejected" in first
    assert f"0 imported, {exported:,} already present, 0 rejected" in again
    assert run("report", "--store", target) == run("report", "--store", simulated)


def test_import_reports_rejected_rows_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"type": "click", "event_id": "c1", "product_id": "p", "rank": 2,'
        ' "timestamp": "2026-11-01T10:00:00Z"}\n'
        '{"type": "click", "event_id": "c2", "product_id": "p", "rank": 0,'
        ' "timestamp": "2026-11-01T10:00:00Z"}\n'
        "not json\n"
    )
    out = run("import", str(path), "--store", f"duckdb:///{tmp_path}/s.duckdb")
    assert "read 3 rows" in out and "1 imported" in out and "2 rejected" in out
    assert "rank" in out and "line 2" in out and "not valid JSON" in out and "line 3" in out


def test_bad_arguments_are_one_clean_line(simulated: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["export", "--store", simulated, "--output", str(tmp_path / "e.xml")]
    )
    assert result.exit_code != 0
    assert "cannot tell the format" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["import", str(tmp_path / "missing.csv")])
    assert result.exit_code != 0 and "Traceback" not in result.output


def test_report_names_each_metric_once_and_gives_rate_differences_in_points(simulated: str) -> None:
    out = run("report", "--days", "7", env={"CLICKSTATS_STORE": simulated, "COLUMNS": "200"})
    # search CTR (a share, in %) and clicks per search (an average) side by side, defined.
    assert "search CTR" in out and "clicks per search" in out
    assert "search CTR: the share of searches with at least one click" in out
    assert "clicks per search: clicks / searches (higher is better)" in out
    assert "difference (95% CI)" in out and "relative change (95% CI)" in out
    row = next(line for line in out.splitlines() if "search CTR *" in line)
    assert re.search(r"[+-]\d+\.\d pp \([+-]\d+\.\d pp to [+-]\d+\.\d pp\)", row), row
    assert re.search(r"[+-]\d+\.\d% \([+-]\d+\.\d% to [+-]\d+\.\d%\)", row), row


def test_report_on_little_data_says_what_is_missing_in_sentences(tmp_path: Path) -> None:
    store = f"duckdb:///{tmp_path}/little.duckdb"
    run("simulate", "--users", "6", "--searches", "25", "--store", store)
    experiments = tmp_path / "experiments.json"
    experiments.write_text(
        '{"experiments": [{"name": "search_ranking", "variants": {"search_v1": 1, "search_v2": 1}},'
        ' {"name": "new_ranker", "variants": {"search_v1": 1, "search_v3": 1}}]}'
    )
    env = {"CLICKSTATS_STORE": store, "CLICKSTATS_EXPERIMENTS": str(experiments), "COLUMNS": "200"}
    out = run("report", "--experiment", "search_ranking", "--experiment", "new_ranker", env=env)
    verdict = next(line for line in out.splitlines() if line.startswith("Verdict: Too early"))
    assert re.search(r"search_v1 has \d+ users? and \d+ search(es)?", verdict), verdict
    assert "a verdict needs at least 30 users and 150 searches in every variant" in verdict
    # A variant without a search: no table, the reason instead.
    assert "Experiment new_ranker: nothing to compare in the last 7 days: " in out
    assert "Verdict: No verdict: " in out
    assert not re.search(r"(?<![\d,])1 (users|searches|clicks)\b", out)
    sentences = [
        line
        for line in out.splitlines()
        if line.startswith(("Verdict", "Users", "Sample", "Experiment new_ranker"))
    ]
    assert len(sentences) >= 5
    for line in sentences:  # whole sentences, with nothing missing after a colon
        assert line.endswith(".") and not re.search(r":\s*\.?$", line), line


def test_report_shows_a_metric_added_to_the_registry(
    simulated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    added = metrics.Metric(
        "ctr_with_results", "CTR of searches with results", "clicked_searches", "with_results",
        True, True,
    )  # fmt: skip
    monkeypatch.setitem(metrics.METRICS, added.name, added)
    out = run("report", "--days", "7", env={"CLICKSTATS_STORE": simulated, "COLUMNS": "250"})
    assert "CTR of searches with results" in out  # a row of the experiment table, defined
    assert f"  {added.label}: {added.x} / {added.y} (a percentage; higher is better)" in out
