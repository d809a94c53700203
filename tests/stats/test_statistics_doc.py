"""docs/STATISTICS.md cannot drift from the code: metrics, parameters and defaults."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from clickstats.stats import decision, health, outliers, sequential
from clickstats.stats.analysis import analyze
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
