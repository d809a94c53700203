"""docs/STATISTICS.md cannot drift from the code: metrics, parameters and defaults."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from clickstats.experiments import Experiment
from clickstats.stats import decision, health, outliers, sequential
from clickstats.stats.analysis import analyze
from clickstats.stats.capping import parse_cap
from clickstats.stats.summary import METRICS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "STATISTICS.md").read_text()


@pytest.mark.parametrize("metric", list(METRICS))
def test_every_metric_and_its_sums_are_documented(metric: str) -> None:
    line = next((row for row in DOC.splitlines() if f"| `{metric}` |" in row), None)
    assert line is not None, f"docs/STATISTICS.md has no row for {metric}"
    better = "higher" if METRICS[metric].higher_is_better else "lower"
    assert line.rstrip().endswith(f"| {better} |")


@pytest.mark.parametrize(
    "name", [p for p in inspect.signature(analyze).parameters if p != "summary"]
)
def test_every_analyze_parameter_is_documented(name: str) -> None:
    assert f"| `{name}` |" in DOC


def test_documented_defaults_are_the_code_defaults() -> None:
    defaults = {p.name: p.default for p in inspect.signature(analyze).parameters.values()}
    assert defaults["tuning"] == sequential.DEFAULT_TUNING == 5000
    assert f"| `tuning` | {sequential.DEFAULT_TUNING:,.0f} |" in DOC
    assert f"| `min_users` | {decision.MIN_USERS} |" in DOC
    assert f"| `min_denominator` | {decision.MIN_DENOMINATOR} |" in DOC
    assert f"| `implausible_lift` | {decision.IMPLAUSIBLE_LIFT} |" in DOC
    assert f"| `srm_threshold` | {health.SRM_THRESHOLD} |" in DOC
    # analyze runs the SRM check from the minimum sample on: min_users per variant.
    assert "| SRM minimum | `min_users` \u00d7 variants," in DOC
    assert f"| `outlier_z` (per experiment) | {outliers.DEFAULT_OUTLIER_Z} |" in DOC
    assert f'| `method` | `"{defaults["method"]}"` |' in DOC
    assert f'| `correction` | `"{defaults["correction"]}"` |' in DOC


def test_the_calibration_table_is_there() -> None:
    assert "| check | result | required |" in DOC
    assert "test_calibration.py" in DOC


def _revenue_rows(check: str) -> list[float]:
    section = DOC[DOC.index("## Revenue: capping and CUPED") : DOC.index("## Decision")]
    rows = [row.split("|") for row in section.splitlines() if row.startswith(f"| {check}")]
    return [float(cells[4]) for cells in rows]


def test_the_revenue_calibration_is_there_and_met() -> None:
    # The bands, for capping off / p99 and CUPED off / on: four rows each.
    assert "scripts/calibrate_revenue.py" in DOC
    rates = _revenue_rows("A/A false-positive rate, revenue per user")
    coverage = _revenue_rows("95% CI coverage of the true difference")
    assert len(rates) == len(coverage) == 4
    assert all(0.032 <= r <= 0.068 for r in rates)
    assert all(0.932 <= c <= 0.968 for c in coverage)


def test_the_revenue_settings_are_documented_with_their_defaults() -> None:
    experiment = Experiment(name="doc", variants={"a": 1, "b": 1})
    assert f"| `cuped_days` (per experiment) | {experiment.cuped_days} |" in DOC
    assert f"| `cuped` (per experiment) | {str(experiment.cuped).lower()} |" in DOC
    assert experiment.currency is None and "| `currency` (per experiment) | null |" in DOC
    assert experiment.column_caps() == {"revenue": parse_cap("p99")}
    assert '| `caps` (per experiment) | `{}`: the registry\'s (revenue `"p99"`) |' in DOC
