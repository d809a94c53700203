"""clickstats judgments as a user runs it: to standard output or a file, in each format."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from click.testing import CliRunner

from clickstats.cli import main
from clickstats.store import open_store
from tests.store.test_judgments import EVENTS


def seeded(tmp_path: Path) -> str:
    url = f"duckdb://{tmp_path / 'events.duckdb'}"
    store = open_store(url)
    store.open()
    try:
        store.append_sync(EVENTS)
    finally:
        store.close()
    return url


def test_json_to_standard_output(tmp_path: Path) -> None:
    url = seeded(tmp_path)
    result = CliRunner().invoke(main, ["judgments", "--store", url, "--min-impressions", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"] == "coec"
    assert [(j["product_id"], j["grade"]) for j in report["judgments"]][:2] == [
        ("p9", 2.0),
        ("p1", 1.8),
    ]
    assert result.stderr == "4 judgments (coec) for 2 queries\n"


def test_srw_and_csv_to_a_file(tmp_path: Path) -> None:
    url = seeded(tmp_path)
    out = tmp_path / "judgments.json"
    args = ["judgments", "--store", url, "--min-impressions", "3", "--model", "pbm"]
    result = CliRunner().invoke(main, [*args, "--format", "srw", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == f"2 judgments (pbm) for 1 query written to {out}\n"
    body = json.loads(out.read_text())
    assert body["type"] == "IMPORT_JUDGMENT"
    ((tv),) = body["judgmentRatings"]
    assert tv["query"] == "tv" and [r["docId"] for r in tv["ratings"]] == ["p1", "p2"]
    assert all(isinstance(r["rating"], str) for r in tv["ratings"])
    table = tmp_path / "judgments.csv"
    result = CliRunner().invoke(main, [*args, "--format", "csv", "-o", str(table)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(table.read_text())))
    assert [(r["product_id"], r["impressions"]) for r in rows] == [("p1", "3"), ("p2", "3")]


def test_nothing_to_judge_says_why(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["judgments", "--store", seeded(tmp_path)])
    assert result.exit_code == 0
    assert result.stderr == (
        "0 judgments (coec) for 0 queries: no product was shown in enough searches\n"
    )


def test_bad_option(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["judgments", "--model", "dbn"])
    assert result.exit_code == 2
    assert "'--model'" in result.stderr
